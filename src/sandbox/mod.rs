//! The healthcheck sandbox: materialise the merged root filesystem into a private temporary directory and
//! run `/x1/bin/entrypoint --healthcheck` in new user/mount/PID/network/IPC/UTS namespaces, with a time
//! limit and an output cap; fall back to docker/podman; otherwise not-run.
