//! Thin async adapters over `SOCK_SEQPACKET` socket pairs: one `proto::ipc` message per packet,
//! descriptors beside it as `SCM_RIGHTS` (main only sends descriptors, never accepts any). They
//! live in `rocserv-rt`, shared with the worker.

pub use rocserv_rt::ipc::*;
