"""The OpenAI-compatible API gateway: auth, holds, upstream calls, metering, settlement of usage."""
