//! RADIUS for sec-mod's `radius` authentication and accounting: the packet codec
//! ([`packet`]) and radcli's configuration files ([`conf`]). Pure: sec-mod sends the bytes and
//! passes random authenticators in.

pub mod conf;
pub mod packet;
