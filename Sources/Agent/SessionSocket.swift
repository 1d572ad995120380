// The session's control socket: a capture outlives its control connection, and `attach`
// reaches the agent that owns it through this socket.

#if canImport(Glibc)
  import Glibc
#endif

/// The socket address of the Unix socket at `path`; nil when the path is too long for one.
func unixAddress(_ path: String) -> sockaddr_un? {
  var address = sockaddr_un()
  address.sun_family = sa_family_t(AF_UNIX)
  let bytes = Array(path.utf8)
  guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
  withUnsafeMutableBytes(of: &address.sun_path) { raw in
    for (index, byte) in bytes.enumerated() { raw[index] = byte }
    raw[bytes.count] = 0
  }
  return address
}

/// Listens on a new Unix socket at `path` (replacing a stale one), owner-only; -1 on failure.
func listen(at path: String) -> Int32 {
  unlink(path)
  guard var address = unixAddress(path) else { return -1 }
  let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { return -1 }
  _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
  let bound = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
      bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
    }
  }
  guard bound == 0, Glibc.listen(fd, 4) == 0 else {
    close(fd)
    return -1
  }
  chmod(path, 0o600)
  return fd
}

/// A connection to the Unix socket at `path`; -1 when nobody listens there.
func connectUnix(_ path: String) -> Int32 {
  guard var address = unixAddress(path) else { return -1 }
  let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { return -1 }
  let connected = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
      connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
    }
  }
  if connected != 0 {
    close(fd)
    return -1
  }
  return fd
}
