"""The partner portal and the data API: self-service for partners, a console for operators."""
