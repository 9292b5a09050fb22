//! The verifying reader: hashes bytes as they pass and fails at EOF when digest or size differ.
