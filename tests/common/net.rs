//! Which process listens on a 127.0.0.1 port, from /proc: a test server that lost the race for
//! its port to a server of another test must not be mistaken for up by a connect that reaches
//! the other one.

/// Whether process `pid` holds the socket listening on 127.0.0.1:`port` (or on every address).
pub fn listening(pid: u32, port: u16) -> bool {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .and_then(|t| {
                t.to_str()
                    .and_then(|s| s.strip_prefix("socket:["))
                    .and_then(|s| s.strip_suffix(']'))
                    .map(str::to_string)
            })
            .is_some_and(|i| inodes.contains(&i))
    })
}

/// Inodes of the sockets in LISTEN on `port` at 127.0.0.1 or 0.0.0.0 (IPv4) or :: (IPv6).
fn listening_inodes(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let Some((addr, p)) = f[1].split_once(':') else {
                continue;
            };
            let ours = matches!(
                addr,
                "0100007F" | "00000000" | "00000000000000000000000000000000"
            );
            if ours && u16::from_str_radix(p, 16).ok() == Some(port) {
                out.push(f[9].to_string());
            }
        }
    }
    out
}
