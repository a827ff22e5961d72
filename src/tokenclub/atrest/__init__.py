"""Encryption at rest for the raw and corpus stores: envelope keys and streaming AES-GCM.

Every stored object gets its own random data key; the object is encrypted with it in chunks
(`sealed`), and the data key is kept in the object's header wrapped by a master key (`keys`).
Rotating the master key re-wraps the headers only; the chunks are never re-encrypted.
"""
