import CLibSSH2
import Foundation
import Support

#if canImport(Glibc)
  import Glibc
#endif

/// A `direct-tcpip` channel through a jump host, exposed as a local socket pair so that the
/// next SSH session can run over it. A dedicated thread owns the jump session from here on
/// and pumps bytes both ways.
final class JumpTunnel: @unchecked Sendable {
  let jump: SSHSession
  let channel: OpaquePointer
  /// Handed to the inner session (it closes it).
  let localSocket: Int32
  private let pumpSocket: Int32
  private let stopFlag = StopFlag()
  private var thread: Thread?
  private let finished = DispatchSemaphore(value: 0)

  final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
  }

  init(through jump: SSHSession, to host: String, port: Int) throws(SSHError) {
    self.jump = jump
    let deadline = Date().addingTimeInterval(jump.options.connectTimeout)
    let opened: OpaquePointer
    while true {
      if let channel = libssh2_channel_direct_tcpip_ex(jump.session, host, Int32(port), "127.0.0.1", 22) {
        opened = channel
        break
      }
      let code = jump.lastErrorCode()
      guard code == LibSSH2.eagain else {
        throw SSHError(
          .connect, host: jump.label,
          "the jump host could not open a connection to \(SSHTarget.label(user: nil, host: host, port: port)): \(SSHSession.error(jump.session, jump.label, "direct-tcpip", code).message)"
        )
      }
      try jump.waitForSocket("opening the tunnel", deadline: deadline)
    }
    channel = opened
    var pair: [Int32] = [-1, -1]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else {
      libssh2_channel_free(opened)
      throw SSHError(.connect, host: jump.label, "socketpair: \(Errno.current)")
    }
    for fd in pair { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    _ = fcntl(pair[1], F_SETFL, fcntl(pair[1], F_GETFL) | O_NONBLOCK)
    localSocket = pair[0]
    pumpSocket = pair[1]
    let thread = Thread { [self] in
      self.pump()
      self.finished.signal()
    }
    thread.name = "smcpair-jump"
    self.thread = thread
    thread.start()
  }

  /// Moves bytes between the socket pair and the channel until either side ends.
  private func pump() {
    var toRemote: [UInt8] = []
    var toLocal: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    var localOpen = true
    while !stopFlag.isSet {
      var progress = false
      if localOpen && toRemote.count < 1 << 20 {
        let n = buffer.withUnsafeMutableBytes { recv(pumpSocket, $0.baseAddress, $0.count, 0) }
        if n > 0 {
          toRemote += buffer[0..<n]
          progress = true
        } else if n == 0 {
          localOpen = false
          _ = libssh2_channel_send_eof(channel)
        }
      }
      if !toRemote.isEmpty {
        let n = toRemote.withUnsafeBytes { libssh2_channel_write_ex(channel, 0, $0.baseAddress, $0.count) }
        if n > 0 {
          toRemote.removeFirst(n)
          progress = true
        } else if n < 0 && Int32(n) != LibSSH2.eagain {
          break
        }
      }
      let r = buffer.withUnsafeMutableBytes { libssh2_channel_read_ex(channel, 0, $0.baseAddress, $0.count) }
      if r > 0 {
        toLocal += buffer[0..<r]
        progress = true
      } else if r < 0 && Int32(r) != LibSSH2.eagain {
        break
      }
      if !toLocal.isEmpty {
        let sent = toLocal.withUnsafeBytes { raw in
          Result { () throws(Errno) in
            try retryingInterrupts { send(pumpSocket, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL)) }
          }
        }
        if case .success(let n) = sent, n > 0 {
          toLocal.removeFirst(n)
          progress = true
        } else if case .failure(let error) = sent, error != .wouldBlock {
          break
        }
      }
      if libssh2_channel_eof(channel) != 0 && toLocal.isEmpty { break }
      if !localOpen && toRemote.isEmpty && libssh2_channel_eof(channel) != 0 { break }
      if !progress {
        let directions = libssh2_session_block_directions(jump.session)
        var fds = [
          pollfd(
            fd: jump.socket,
            events: Int16(POLLIN) | (directions & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 ? Int16(POLLOUT) : 0),
            revents: 0),
          pollfd(fd: pumpSocket, events: Int16(POLLIN) | (toLocal.isEmpty ? 0 : Int16(POLLOUT)), revents: 0),
        ]
        _ = poll(&fds, 2, 100)
      }
    }
    shutdown(pumpSocket, Int32(SHUT_RDWR))
  }

  func close() {
    stopFlag.set()
    if thread != nil {
      finished.wait()
      thread = nil
      libssh2_channel_free(channel)
      Glibc.close(pumpSocket)
      jump.close()
    }
  }
}
