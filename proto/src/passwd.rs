//! ocserv's password file (`ocpasswd`): `user:group1,group2:hash`, one user per line.
//! Parsed by sec-mod and ocpasswd from an admin-owned file. (Skeleton: being written.)
