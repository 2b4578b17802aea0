//! Black-box tests: the real binaries, a fresh database each, HTTP on a free port.

mod bad_input;
mod contacts;
mod conversations;
mod foundation;
mod live;
mod openapi;
mod permissions;
mod webhook;
