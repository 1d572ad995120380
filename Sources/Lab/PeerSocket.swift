import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A blocking IPv4 TCP socket with timeouts on every wait (the emulator never hangs).
final class PeerSocket {
  let fd: Int32
  let timeout: Double

  private init(fd: Int32, timeout: Double) {
    self.fd = fd
    self.timeout = timeout
  }

  deinit { close(fd) }

  static func error(_ what: String) -> LabError {
    LabError("\(what): \(String(cString: strerror(errno)))")
  }

  static func address(_ host: String, _ port: UInt16) throws(LabError) -> sockaddr_in {
    var sin = sockaddr_in()
    sin.sin_family = sa_family_t(AF_INET)
    sin.sin_port = port.bigEndian
    guard inet_pton(AF_INET, host, &sin.sin_addr) == 1 else {
      throw LabError("'\(host)' is not an IPv4 address")
    }
    return sin
  }

  static func listen(host: String, port: UInt16, timeout: Double) throws(LabError) -> PeerSocket {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw error("socket") }
    let socket = PeerSocket(fd: fd, timeout: timeout)
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var sin = try address(host, port)
    let bound = withUnsafePointer(to: &sin) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard bound == 0 else { throw error("bind \(host):\(port)") }
    guard Glibc.listen(fd, 16) == 0 else { throw error("listen") }
    return socket
  }

  func accept() throws(LabError) -> PeerSocket {
    try wait(POLLIN, "waiting for a connection")
    let client = Glibc.accept(fd, nil, nil)
    guard client >= 0 else { throw PeerSocket.error("accept") }
    _ = fcntl(client, F_SETFD, FD_CLOEXEC)
    let accepted = PeerSocket(fd: client, timeout: timeout)
    accepted.sendWithoutDelay()
    return accepted
  }

  static func connect(host: String, port: UInt16, localPort: UInt16?, timeout: Double) throws(LabError)
    -> PeerSocket
  {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw error("socket") }
    let socket = PeerSocket(fd: fd, timeout: timeout)
    if let localPort {
      var one: Int32 = 1
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
      var local = try address("0.0.0.0", localPort)
      let bound = withUnsafePointer(to: &local) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
      }
      guard bound == 0 else { throw error("bind local port \(localPort)") }
    }
    var sin = try address(host, port)
    let deadline = Date().addingTimeInterval(timeout)
    while true {
      let result = withUnsafePointer(to: &sin) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
      }
      if result == 0 {
        socket.sendWithoutDelay()
        return socket
      }
      // The server may not be listening yet: retry until the deadline.
      if (errno == ECONNREFUSED || errno == EINTR) && Date() < deadline {
        usleep(20_000)
        continue
      }
      throw error("connect \(host):\(port)")
    }
  }

  /// TCP_NODELAY: every emulator message (CLC, fabric write with its CDC) leaves at once.
  /// Without it, Nagle holds a small write back until the previous one is acknowledged, and
  /// with the peer's delayed ACK that is ~40 ms: lab-made delay outliers between a sender's
  /// and a receiver's CDC records. One write per message, so no extra small segments.
  func sendWithoutDelay() {
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
  }

  /// (local, peer) endpoints as "a.b.c.d", port.
  func endpoints() -> (local: (String, UInt16), peer: (String, UInt16)) {
    func name(_ get: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32) -> (
      String, UInt16
    ) {
      var sin = sockaddr_in()
      var length = socklen_t(MemoryLayout<sockaddr_in>.size)
      _ = withUnsafeMutablePointer(to: &sin) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { get(fd, $0, &length) }
      }
      var text = [CChar](repeating: 0, count: 32)
      inet_ntop(AF_INET, &sin.sin_addr, &text, 32)
      return (String(cString: text), UInt16(bigEndian: sin.sin_port))
    }
    return (name(getsockname), name(getpeername))
  }

  func wait(_ events: Int32, _ what: String) throws(LabError) {
    var entry = pollfd(fd: fd, events: Int16(events), revents: 0)
    while true {
      let ready = poll(&entry, 1, Int32(timeout * 1000))
      if ready > 0 { return }
      if ready == 0 { throw LabError("timed out after \(Int(timeout)) s \(what)") }
      if errno != EINTR { throw PeerSocket.error(what) }
    }
  }

  func writeAll(_ bytes: [UInt8]) throws(LabError) {
    var written = 0
    while written < bytes.count {
      try wait(POLLOUT, "sending to the peer")
      let n = bytes.withUnsafeBytes { raw in
        let rest = UnsafeRawBufferPointer(rebasing: raw[written...])
        return send(fd, rest.baseAddress, rest.count, Int32(MSG_NOSIGNAL))
      }
      if n < 0 {
        if errno == EINTR || errno == EAGAIN { continue }
        throw PeerSocket.error("send")
      }
      written += n
    }
  }

  /// Exactly `count` bytes; nil at a clean end of stream before the first byte.
  func readExact(_ count: Int) throws(LabError) -> [UInt8]? {
    var out = [UInt8](repeating: 0, count: count)
    var got = 0
    while got < count {
      try wait(POLLIN, "waiting for the peer")
      let n = out.withUnsafeMutableBytes { raw in
        let rest = UnsafeMutableRawBufferPointer(rebasing: raw[got...])
        return recv(fd, rest.baseAddress, rest.count, 0)
      }
      if n < 0 {
        if errno == EINTR || errno == EAGAIN { continue }
        throw PeerSocket.error("recv")
      }
      if n == 0 {
        if got == 0 { return nil }
        throw LabError("the peer closed the connection in the middle of a message (\(got) of \(count) bytes)")
      }
      got += n
    }
    return out
  }

  /// Shuts down sending (FIN), then waits for the peer to close (bounded).
  func closeGracefully() {
    shutdown(fd, Int32(SHUT_WR))
    var scratch = [UInt8](repeating: 0, count: 4096)
    var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    for _ in 0..<100 {
      guard poll(&entry, 1, 50) > 0 else { continue }
      let n = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
      if n <= 0 { return }
    }
  }
}
