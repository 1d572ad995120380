import CLibSSH2
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// How a remote command ended. A non-zero exit is a result, not an error.
public struct CommandOutput: Sendable {
  public var exitStatus: Int32?
  /// The signal name (e.g. "KILL") when a signal ended the command.
  public var signal: String?
  public var stdout: [UInt8]
  public var stderr: [UInt8]
  public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
  public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

extension SSHSession {
  func openChannel(_ what: String) throws(SSHError) -> OpaquePointer {
    let deadline = Date().addingTimeInterval(options.inactivityTimeout)
    while true {
      if let channel = libssh2_channel_open_ex(
        session, "session", 7, smcpair_ssh2_channel_window_default, smcpair_ssh2_channel_packet_default, nil,
        0)
      {
        return channel
      }
      let code = lastErrorCode()
      guard code == LibSSH2.eagain else { throw SSHSession.error(session, label, what, code) }
      try waitForSocket(what, deadline: deadline)
    }
  }

  /// Runs `command` (a remote shell command line: build it with `RemoteCommand.join`),
  /// feeding `stdin` and reading stdout and stderr together, so a command that writes
  /// megabytes to either never stalls.
  @discardableResult
  public func run(
    _ command: String, stdin: [UInt8]? = nil, onStdout: (ArraySlice<UInt8>) -> Void,
    onStderr: (ArraySlice<UInt8>) -> Void
  ) throws(SSHError) -> (exitStatus: Int32?, signal: String?) {
    let channel = try openChannel("opening a channel")
    defer { libssh2_channel_free(channel) }
    _ = try retry("starting '\(command)'") {
      libssh2_channel_process_startup(channel, "exec", 4, command, UInt32(command.utf8.count))
    }
    var input = stdin ?? []
    var inputOffset = 0
    var eofSent = false
    if input.isEmpty {
      _ = try retry("closing stdin") { libssh2_channel_send_eof(channel) }
      eofSent = true
    }
    var buffer = [UInt8](repeating: 0, count: 256 * 1024)
    var deadline = Date().addingTimeInterval(options.inactivityTimeout)
    while true {
      var progress = false
      for stream: Int32 in [0, 1] {
        while true {
          let n = buffer.withUnsafeMutableBytes {
            libssh2_channel_read_ex(channel, stream, $0.baseAddress, $0.count)
          }
          if n > 0 {
            if stream == 0 { onStdout(buffer[0..<n]) } else { onStderr(buffer[0..<n]) }
            progress = true
            continue
          }
          if n < 0 && Int32(n) != LibSSH2.eagain {
            throw SSHSession.error(session, label, "reading the output of '\(command)'", Int32(n))
          }
          break
        }
      }
      if !eofSent {
        let n = input.withUnsafeBytes { raw in
          libssh2_channel_write_ex(channel, 0, raw.baseAddress! + inputOffset, raw.count - inputOffset)
        }
        if n > 0 {
          inputOffset += n
          progress = true
        } else if n < 0 && Int32(n) != LibSSH2.eagain {
          throw SSHSession.error(session, label, "writing to '\(command)'", Int32(n))
        }
        if inputOffset >= input.count {
          _ = try retry("closing stdin") { libssh2_channel_send_eof(channel) }
          eofSent = true
          input = []
        }
      }
      // A zero-byte read is not the end: the channel says when it is.
      if libssh2_channel_eof(channel) != 0 && !progress { break }
      if progress {
        deadline = Date().addingTimeInterval(options.inactivityTimeout)
      } else {
        try waitForSocket("running '\(command)'", deadline: deadline)
      }
    }
    // The exit status is known only after close + wait_closed.
    _ = try retry("closing the channel") { libssh2_channel_close(channel) }
    _ = try retry("closing the channel") { libssh2_channel_wait_closed(channel) }
    var signalName: UnsafeMutablePointer<CChar>?
    var signalLength = 0
    _ = libssh2_channel_get_exit_signal(channel, &signalName, &signalLength, nil, nil, nil, nil)
    if let signalName {
      let name = String(cString: signalName)
      free(signalName)
      return (nil, name)
    }
    return (libssh2_channel_get_exit_status(channel), nil)
  }

  /// Runs a command and collects its output.
  public func run(_ command: String, stdin: [UInt8]? = nil) throws(SSHError) -> CommandOutput {
    var stdout: [UInt8] = []
    var stderr: [UInt8] = []
    let (status, signal) = try run(
      command, stdin: stdin, onStdout: { stdout += $0 }, onStderr: { stderr += $0 })
    return CommandOutput(exitStatus: status, signal: signal, stdout: stdout, stderr: stderr)
  }

  /// A long-running command spoken to line by line (the agent protocol).
  public func stream(_ command: String) throws(SSHError) -> CommandStream {
    let channel = try openChannel("opening a channel")
    do throws(SSHError) {
      _ = try retry("starting '\(command)'") {
        libssh2_channel_process_startup(channel, "exec", 4, command, UInt32(command.utf8.count))
      }
    } catch {
      libssh2_channel_free(channel)
      throw error
    }
    return CommandStream(session: self, channel: channel, command: command)
  }
}

/// Line-oriented conversation with a remote command. stderr is drained all the time (the
/// last 64 KiB are kept for error messages), so it can never stall the channel.
public final class CommandStream: @unchecked Sendable {
  let session: SSHSession
  let channel: OpaquePointer
  public let command: String
  private var pending: [UInt8] = []
  public private(set) var stderrTail: [UInt8] = []
  private var closed = false
  /// Longest line `readLine` accepts (the agent protocol's limit too).
  public static let maximumLine = 1 << 20

  init(session: SSHSession, channel: OpaquePointer, command: String) {
    self.session = session
    self.channel = channel
    self.command = command
  }

  deinit { _ = try? close() }

  /// Sends one line (a newline is added).
  public func send(line: String) throws(SSHError) {
    var bytes = Array((line + "\n").utf8)
    let deadline = Date().addingTimeInterval(session.options.inactivityTimeout)
    while !bytes.isEmpty {
      let n = bytes.withUnsafeBytes { libssh2_channel_write_ex(channel, 0, $0.baseAddress, $0.count) }
      if n > 0 {
        bytes.removeFirst(n)
      } else if n < 0 && Int32(n) != LibSSH2.eagain {
        throw SSHSession.error(session.session, session.label, "writing to '\(command)'", Int32(n))
      } else {
        drain()
        try session.waitForSocket("writing to '\(command)'", deadline: deadline)
      }
    }
  }

  private func drain() {
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
      let n = buffer.withUnsafeMutableBytes { libssh2_channel_read_ex(channel, 1, $0.baseAddress, $0.count) }
      guard n > 0 else { break }
      stderrTail += buffer[0..<n]
      if stderrTail.count > 65536 { stderrTail.removeFirst(stderrTail.count - 65536) }
    }
  }

  /// The next line of stdout; nil at the end of the stream or after `timeout` seconds.
  public func readLine(timeout: Double) throws(SSHError) -> String? {
    let deadline = Date().addingTimeInterval(timeout)
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
      if let newline = pending.firstIndex(of: 0x0A) {
        let line = String(decoding: pending[..<newline], as: UTF8.self)
        pending.removeFirst(newline + 1)
        return line
      }
      drain()
      let n = buffer.withUnsafeMutableBytes { libssh2_channel_read_ex(channel, 0, $0.baseAddress, $0.count) }
      if n > 0 {
        pending += buffer[0..<n]
        if pending.count > CommandStream.maximumLine && !pending.contains(0x0A) {
          // A peer that never ends its line must not grow this buffer without bound.
          pending.removeAll()
          throw SSHError(
            .channel, host: session.label,
            "'\(command)' sent a line longer than \(CommandStream.maximumLine >> 20) MiB; not a protocol line"
          )
        }
        continue
      }
      if n < 0 && Int32(n) != LibSSH2.eagain {
        throw SSHSession.error(session.session, session.label, "reading from '\(command)'", Int32(n))
      }
      if libssh2_channel_eof(channel) != 0 { return nil }
      if deadline.timeIntervalSinceNow <= 0 { return nil }
      do {
        try session.waitForSocket("reading from '\(command)'", deadline: deadline)
      } catch {
        if error.code == .timeout { return nil }
        throw error
      }
    }
  }

  /// Closes stdin, waits for the command to end and returns its exit status.
  @discardableResult
  public func close() throws(SSHError) -> Int32? {
    guard !closed else { return nil }
    closed = true
    // A closed session has freed its channels with it.
    if session.isClosed { return nil }
    defer { libssh2_channel_free(channel) }
    if session.broken { return nil }
    _ = try session.retry("closing stdin") { libssh2_channel_send_eof(channel) }
    _ = try session.retry("closing the channel") { libssh2_channel_close(channel) }
    _ = try session.retry("closing the channel") { libssh2_channel_wait_closed(channel) }
    return libssh2_channel_get_exit_status(channel)
  }
}
