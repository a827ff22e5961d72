"""The gateway's HTTP routes, by audience: the OpenAI API, a key's own account, the operator."""
