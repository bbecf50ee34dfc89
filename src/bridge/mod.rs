//! The meeting bridge: the embedded conference mixer and routing to external bridges.
