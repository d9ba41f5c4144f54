//! Host tests of the system-call handlers against a fake node.
