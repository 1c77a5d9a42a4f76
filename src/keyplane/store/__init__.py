"""All SQL lives here. Database errors leave this package as domain errors."""
