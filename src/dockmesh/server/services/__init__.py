"""The service layer: what the API and the pages both call; takes the caller, raises domain errors."""
