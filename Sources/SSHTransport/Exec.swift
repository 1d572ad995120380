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

/// What one remote command may cost: how much of its output is accepted and how long it may
/// run. A host whose sshd answers every command with endless output (`ForceCommand yes`) or
/// with a line every few seconds must not exhaust the workstation's memory or keep it
/// waiting: past a limit the channel is closed and the command fails with an error that
/// names the host and what the command was for.
public struct CommandLimits: Sendable {
  /// Most bytes of stdout accepted; nil when the caller streams them somewhere bounded.
  public var stdout: Int?
  /// Most bytes of stderr accepted; nil when the caller streams them somewhere bounded.
  public var stderr: Int?
  /// Seconds the whole command may take, output or not; nil when only the inactivity
  /// timeout applies (transfers, workloads, the agent's protocol channel).
  public var seconds: Double?

  public init(stdout: Int? = 64 << 10, stderr: Int? = 64 << 10, seconds: Double? = 30) {
    self.stdout = stdout
    self.stderr = stderr
    self.seconds = seconds
  }

  /// 64 KiB of stdout, 64 KiB of stderr, 30 s in all: for commands whose answer is short.
  public static let standard = CommandLimits()

  /// For output the caller writes to a file as it comes (a pulled capture, a workload's
  /// log): no cap on stdout, `stderr` bytes of stderr, no overall deadline.
  public static func streaming(stdout: Int? = nil, stderr: Int? = 64 << 10) -> CommandLimits {
    CommandLimits(stdout: stdout, stderr: stderr, seconds: nil)
  }

  /// `65536` as "64 KiB", for messages.
  public static func describe(_ bytes: Int) -> String {
    bytes >= 1 << 20 && bytes % (1 << 20) == 0
      ? "\(bytes >> 20) MiB" : bytes >= 1024 && bytes % 1024 == 0 ? "\(bytes >> 10) KiB" : "\(bytes) bytes"
  }
}

/// The stdin still to send to a running command, and whether its end has been sent.
struct PendingInput {
  var bytes: [UInt8]
  var offset = 0
  var eofSent = false
}

extension SSHSession {
  func openChannel(_ what: String, until: Date? = nil) throws(SSHError) -> OpaquePointer {
    let deadline = earliest(Date().addingTimeInterval(options.inactivityTimeout), until)
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

  func earliest(_ deadline: Date, _ other: Date?) -> Date {
    guard let other else { return deadline }
    return min(deadline, other)
  }

  /// Closes a channel that is being given up on (too much output, too slow): sends the
  /// close without waiting for the host's reply for long. A host that does not let go
  /// within 5 s gets its connection shut down, so nothing further waits on it.
  func abandon(_ channel: OpaquePointer) {
    var deadline = Date().addingTimeInterval(5)
    do throws(SSHError) {
      try SSHSession.retry(session, socket, label, "closing the channel", deadline: &deadline, refresh: false)
      {
        libssh2_channel_close(channel)
      }
    } catch {
      abort()
    }
  }

  /// Runs `command` (a remote shell command line: build it with `RemoteCommand.join`),
  /// feeding `stdin` and reading stdout and stderr together, so a command that writes
  /// megabytes to either never stalls. `purpose` says what the command is for in errors
  /// (default: the command line). `limits` (default: the options' `commandLimits`) caps the
  /// bytes accepted on each stream and the time the whole command may take; past either the
  /// channel is closed and an `SSHError` (`output-limit` or `timeout`) says so.
  @discardableResult
  public func run(
    _ command: String, purpose: String? = nil, stdin: [UInt8]? = nil, limits: CommandLimits? = nil,
    onStdout: (ArraySlice<UInt8>) -> Void, onStderr: (ArraySlice<UInt8>) -> Void
  ) throws(SSHError) -> (exitStatus: Int32?, signal: String?) {
    let limits = limits ?? options.commandLimits
    let purpose = purpose ?? "'\(command)'"
    let overall = limits.seconds.map { Date().addingTimeInterval($0) }
    let channel = try openChannel("\(purpose): opening a channel", until: overall)
    defer { if !broken { libssh2_channel_free(channel) } }
    do throws(SSHError) {
      var input = try start(command, on: channel, purpose: purpose, stdin: stdin ?? [], overall: overall)
      try exchange(
        on: channel, purpose: purpose, input: &input, limits: limits, overall: overall,
        onStdout: onStdout, onStderr: onStderr)
      try closeForExitStatus(channel, purpose: purpose, overall: overall)
    } catch {
      if error.code == .timeout && !broken { abandon(channel) }
      throw error
    }
    return exitOutcome(of: channel)
  }

  /// Starts `command` on `channel`; a command given no input has its stdin closed at once.
  private func start(
    _ command: String, on channel: OpaquePointer, purpose: String, stdin: [UInt8], overall: Date?
  ) throws(SSHError) -> PendingInput {
    var deadline = earliest(Date().addingTimeInterval(options.inactivityTimeout), overall)
    _ = try SSHSession.retry(
      session, socket, label, "\(purpose): starting", deadline: &deadline, refresh: false
    ) {
      libssh2_channel_process_startup(channel, "exec", 4, command, UInt32(command.utf8.count))
    }
    var input = PendingInput(bytes: stdin)
    if stdin.isEmpty {
      _ = try SSHSession.retry(
        session, socket, label, "\(purpose): closing stdin", deadline: &deadline, refresh: false
      ) {
        libssh2_channel_send_eof(channel)
      }
      input.eofSent = true
    }
    return input
  }

  /// Reads stdout and stderr and writes the input until the channel ends, within `limits`:
  /// both streams are read in every round so a command writing megabytes to either never stalls.
  private func exchange(
    on channel: OpaquePointer, purpose: String, input: inout PendingInput, limits: CommandLimits,
    overall: Date?, onStdout: (ArraySlice<UInt8>) -> Void, onStderr: (ArraySlice<UInt8>) -> Void
  ) throws(SSHError) {
    var received = [0, 0]
    let caps = [limits.stdout, limits.stderr]
    var buffer = [UInt8](repeating: 0, count: 256 * 1024)
    var deadline = Date().addingTimeInterval(options.inactivityTimeout)
    while true {
      var progress = false
      for stream: Int32 in [0, 1] {
        let index = Int(stream)
        let read = try drain(
          stream, of: channel, into: &buffer, received: &received[index], cap: caps[index], purpose: purpose
        ) { chunk in
          if stream == 0 { onStdout(chunk) } else { onStderr(chunk) }
        }
        if read { progress = true }
      }
      if try feed(&input, to: channel, purpose: purpose) { progress = true }
      // A zero-byte read is not the end: the channel says when it is.
      if libssh2_channel_eof(channel) != 0 && !progress { break }
      if let overall, let seconds = limits.seconds, overall.timeIntervalSinceNow <= 0 {
        abandon(channel)
        throw SSHError(
          .timeout, host: label,
          "\(purpose): not finished after \(Int(seconds.rounded())) s (\(received[0] + received[1]) bytes of output so far); the channel was closed. Is a ForceCommand or a login script holding every command?"
        )
      }
      if progress {
        deadline = Date().addingTimeInterval(options.inactivityTimeout)
      } else {
        try waitForSocket("\(purpose): waiting for the output", deadline: earliest(deadline, overall))
      }
    }
  }

  /// Hands `deliver` everything `stream` (0 stdout, 1 stderr) has now; true when anything came.
  /// Past `cap` bytes in all the channel is closed and the command fails with `output-limit`.
  private func drain(
    _ stream: Int32, of channel: OpaquePointer, into buffer: inout [UInt8], received: inout Int, cap: Int?,
    purpose: String, deliver: (ArraySlice<UInt8>) -> Void
  ) throws(SSHError) -> Bool {
    var progress = false
    while true {
      let n = buffer.withUnsafeMutableBytes {
        libssh2_channel_read_ex(channel, stream, $0.baseAddress, $0.count)
      }
      if n > 0 {
        received += n
        if let cap, received > cap {
          abandon(channel)
          throw SSHError(
            .outputLimit, host: label,
            "\(purpose): the host sent more than \(CommandLimits.describe(cap)) on \(stream == 0 ? "stdout" : "stderr"); the channel was closed. Is a ForceCommand or a login script printing on every command?"
          )
        }
        deliver(buffer[0..<n])
        progress = true
        continue
      }
      if n < 0 && Int32(n) != LibSSH2.eagain {
        throw SSHSession.error(session, label, "\(purpose): reading the output", Int32(n))
      }
      return progress
    }
  }

  /// Writes what the channel takes of the pending input and closes stdin once all of it is
  /// sent; true when anything was written.
  private func feed(_ input: inout PendingInput, to channel: OpaquePointer, purpose: String) throws(SSHError)
    -> Bool
  {
    guard !input.eofSent else { return false }
    var progress = false
    let offset = input.offset
    let n = input.bytes.withUnsafeBytes { raw in
      libssh2_channel_write_ex(
        channel, 0, UnsafeRawBufferPointer(rebasing: raw[offset...]).baseAddress, raw.count - offset)
    }
    if n > 0 {
      input.offset += n
      progress = true
    } else if n < 0 && Int32(n) != LibSSH2.eagain {
      throw SSHSession.error(session, label, "\(purpose): writing the input", Int32(n))
    }
    if input.offset >= input.bytes.count {
      _ = try retry("closing stdin") { libssh2_channel_send_eof(channel) }
      input.eofSent = true
      input.bytes = []
    }
    return progress
  }

  /// Closes the channel and waits for the host to close its end: the exit status is known
  /// only after close + wait_closed.
  private func closeForExitStatus(_ channel: OpaquePointer, purpose: String, overall: Date?) throws(SSHError)
  {
    var deadline = earliest(Date().addingTimeInterval(options.inactivityTimeout), overall.map { $0 + 5 })
    _ = try SSHSession.retry(
      session, socket, label, "\(purpose): closing the channel", deadline: &deadline, refresh: false
    ) {
      libssh2_channel_close(channel)
    }
    _ = try SSHSession.retry(
      session, socket, label, "\(purpose): closing the channel", deadline: &deadline, refresh: false
    ) {
      libssh2_channel_wait_closed(channel)
    }
  }

  /// How the command on a closed channel ended: the signal that ended it, else its exit status.
  private func exitOutcome(of channel: OpaquePointer) -> (exitStatus: Int32?, signal: String?) {
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

  /// Runs a command and collects its output (at most what `limits` allows: by default
  /// 64 KiB of each stream, see `CommandLimits`).
  public func run(
    _ command: String, purpose: String? = nil, stdin: [UInt8]? = nil, limits: CommandLimits? = nil
  ) throws(SSHError) -> CommandOutput {
    var stdout: [UInt8] = []
    var stderr: [UInt8] = []
    let (status, signal) = try run(
      command, purpose: purpose, stdin: stdin, limits: limits, onStdout: { stdout += $0 },
      onStderr: { stderr += $0 })
    return CommandOutput(exitStatus: status, signal: signal, stdout: stdout, stderr: stderr)
  }

  /// A long-running command spoken to line by line (the agent protocol). Its lines are
  /// limited to `CommandStream.maximumLine` and its stderr to `CommandStream.maximumStderr`;
  /// there is no overall deadline (each read has its own timeout).
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

/// Line-oriented conversation with a remote command. stderr is drained all the time, so it
/// can never stall the channel, and kept for error messages; more than
/// `maximumStderr` bytes of it fail the stream (the agent writes a line or two there at most).
public final class CommandStream: @unchecked Sendable {
  let session: SSHSession
  let channel: OpaquePointer
  public let command: String
  private var pending = LineBuffer(maximumLine: CommandStream.maximumLine)
  public private(set) var stderrTail: [UInt8] = []
  private var stderrBytes = 0
  private var closed = false
  /// Longest line `readLine` accepts (the agent protocol's limit too).
  public static let maximumLine = 1 << 20
  /// Most bytes of stderr accepted over the stream's life.
  public static let maximumStderr = 64 << 10

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
        try drain()
        try session.waitForSocket("writing to '\(command)'", deadline: deadline)
      }
    }
  }

  private func drain() throws(SSHError) {
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
      let n = buffer.withUnsafeMutableBytes { libssh2_channel_read_ex(channel, 1, $0.baseAddress, $0.count) }
      guard n > 0 else { break }
      stderrBytes += n
      guard stderrBytes <= CommandStream.maximumStderr else {
        abandon()
        throw SSHError(
          .outputLimit, host: session.label,
          "'\(command)' sent more than \(CommandLimits.describe(CommandStream.maximumStderr)) on stderr; the channel was closed"
        )
      }
      stderrTail += buffer[0..<n]
    }
  }

  /// The next line of stdout; nil at the end of the stream or after `timeout` seconds.
  public func readLine(timeout: Double) throws(SSHError) -> String? {
    let deadline = Date().addingTimeInterval(timeout)
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
      do {
        if let line = try pending.nextLine() { return line }
      } catch {
        // A peer that never ends its line must not grow this buffer without bound.
        abandon()
        throw SSHError(
          .channel, host: session.label,
          "'\(command)' sent a line longer than \(CommandStream.maximumLine >> 20) MiB; not a protocol line")
      }
      try drain()
      let n = buffer.withUnsafeMutableBytes { libssh2_channel_read_ex(channel, 0, $0.baseAddress, $0.count) }
      if n > 0 {
        pending.append(buffer[0..<n])
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

  /// Gives up on the command (it sent what it must not, or too slowly): the channel is
  /// closed without waiting for the command to end. Safe to repeat; `close()` does nothing
  /// afterwards.
  public func abandon() {
    guard !closed else { return }
    closed = true
    guard !session.isClosed else { return }
    if !session.broken { session.abandon(channel) }
    if !session.broken { libssh2_channel_free(channel) }
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
