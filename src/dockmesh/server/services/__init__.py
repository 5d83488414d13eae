"""The service layer: what the API and the pages both call. Functions take the caller and raise domain
errors (`services.errors`); the API renders them as JSON, the pages as HTML."""
