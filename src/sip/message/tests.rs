//! Unit tests for the message parser and serialiser.
