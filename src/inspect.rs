//! The `inspect` report: what goprobe knows about a Go binary, rendered for a
//! person or as JSON.
