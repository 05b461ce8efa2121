"""Small adapters between the domain and AWS services; each turns ClientError into domain errors."""
