import Foundation
import SSHTransport

/// A workload command (`--server-cmd`, `--client-cmd`) running on a host over its own SSH
/// connection while both sides capture. The command is the user's own shell command line;
/// it runs in a fresh process group so that it can be ended as a whole. Its stdout and
/// stderr go to a log file in the session folder.
public final class Workload: @unchecked Sendable {
  public let command: String
  public let logPath: String
  /// Put in the workload's environment (`SMCPAIR_WORKLOAD`), so that a later `sessions resume`
  /// ends its process group only if that pid still is this workload (never a reused pid).
  public let tag: String
  let access: HostAccess
  private let lock = NSLock()
  private var _finished = false
  private var _exitStatus: Int32?
  private var _signal: String?
  private var _error: String?
  private var _pid: Int32?
  private var startedAt = Date()
  private var finishedAt: Date?

  static let marker = "smcpair-workload-pid "

  init(access: HostAccess, command: String, logPath: String, tag: String) {
    self.access = access
    self.command = command
    self.logPath = logPath
    self.tag = tag
  }

  public var finished: Bool { lock.withLock { _finished } }
  public var exitStatus: Int32? { lock.withLock { _exitStatus } }
  public var error: String? { lock.withLock { _error } }
  /// The process group of the command on its host, once it started.
  public var pid: Int32? { lock.withLock { _pid } }
  /// How it ended, for the summary and session.json.
  public var outcome: WorkloadOutcome {
    lock.withLock {
      if let _error { return .failed(_error) }
      if !_finished { return .running }
      if let _signal { return .signalled(_signal) }
      return .exited(_exitStatus ?? -1)
    }
  }
  public var seconds: Double? {
    lock.withLock { finishedAt.map { $0.timeIntervalSince(startedAt) } }
  }

  /// Starts the command on its own thread.
  func start() {
    let thread = Thread { [self] in self.execute() }
    thread.stackSize = 1 << 20
    thread.start()
  }

  private func execute() {
    let fd = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    defer { if fd >= 0 { Glibc.close(fd) } }
    func append(_ bytes: ArraySlice<UInt8>) {
      guard fd >= 0 else { return }
      _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }
    var options = access.options
    // A workload may be silent for a long time; the keepalives watch the connection.
    options.inactivityTimeout = 7 * 86400
    var pending: [UInt8] = []
    var sawMarker = false
    do {
      let ssh = try SSHSession.connect(access.target, options: options)
      defer { ssh.close() }
      // `$$` is the shell sshd started (a session leader), so its pid is the process group.
      let line = RemoteCommand.join([
        "sh", "-c",
        "echo \(Workload.marker)$$; SMCPAIR_WORKLOAD=$2; export SMCPAIR_WORKLOAD; exec sh -c \"$1\"",
        "smcpair-workload", command, tag,
      ])
      lock.withLock { startedAt = Date() }
      // The output goes to the workload's log file as it comes: no cap, no overall deadline.
      let (status, signal) = try ssh.run(
        line, purpose: "running the workload", limits: .streaming(stderr: nil),
        onStdout: { chunk in
          if sawMarker {
            append(chunk)
            return
          }
          pending += chunk
          guard let newline = pending.firstIndex(of: 0x0A) else {
            // No marker line within 64 KiB: not our wrapper's output; log it as it is.
            if pending.count > 64 << 10 {
              sawMarker = true
              append(pending[...])
              pending = []
            }
            return
          }
          let first = String(decoding: pending[..<newline], as: UTF8.self)
          if first.hasPrefix(Workload.marker), let pid = Int32(first.dropFirst(Workload.marker.count)) {
            self.lock.withLock { self._pid = pid }
          }
          sawMarker = true
          append(pending[(newline + 1)...])
          pending = []
        }, onStderr: append)
      lock.withLock {
        _exitStatus = status
        _signal = signal
      }
    } catch {
      lock.withLock { _error = error.description }
    }
    lock.withLock {
      _finished = true
      finishedAt = Date()
    }
  }

  /// Ends the command's process group (SIGTERM) through `ssh`, if it still runs.
  func terminate(using ssh: SSHSession?) {
    guard !finished, let pid, pid > 1, let ssh else { return }
    _ = try? ssh.run(
      RemoteCommand.join(["kill", "-TERM", "--", "-\(pid)"]), purpose: "stopping the workload's processes")
  }

  /// Ends the process group `pid` on the host of `ssh` if its leader still carries `tag` in
  /// its environment (the workload a killed coordinator left running). True when it was ended.
  /// `env kill`: dash's built-in kill takes no `--`, so it cannot name a process group.
  static func terminate(pid: Int32, tag: String, using ssh: SSHSession) -> Bool {
    guard pid > 1 else { return false }
    let script =
      #"tr '\0' '\n' < /proc/"$1"/environ 2>/dev/null | grep -qxF "SMCPAIR_WORKLOAD=$2" && env kill -TERM -- "-$1""#
    let output = try? ssh.run(RemoteCommand.join(["sh", "-c", script, "smcpair-stop", "\(pid)", tag]))
    return output?.exitStatus == 0
  }
}

/// How a workload command ended (or that it has not yet). Recorded in session.json as its
/// text (`exit status 0`, `ended by signal TERM`, `failed: ...`, `running`).
public enum WorkloadOutcome: Sendable, Equatable, Codable, CustomStringConvertible {
  case running
  /// The command's exit status (-1: the host gave none).
  case exited(Int32)
  /// Ended by this signal (its name, as the SSH server gave it).
  case signalled(String)
  /// It could not be run or its connection broke: why.
  case failed(String)

  /// It ran to its end with status 0.
  public var succeeded: Bool { self == .exited(0) }

  public var description: String {
    switch self {
    case .running: "running"
    case .exited(let status): "exit status \(status)"
    case .signalled(let signal): "ended by signal \(signal)"
    case .failed(let why): "failed: \(why)"
    }
  }

  /// The outcome a record gives as text; nil for text no outcome writes.
  public init?(recorded text: String) {
    if text == "running" {
      self = .running
    } else if let status = text.strippingPrefix("exit status ").flatMap({ Int32($0) }) {
      self = .exited(status)
    } else if let signal = text.strippingPrefix("ended by signal ") {
      self = .signalled(signal)
    } else if let why = text.strippingPrefix("failed: ") {
      self = .failed(why)
    } else {
      return nil
    }
  }

  public init(from decoder: any Decoder) throws {
    let text = try decoder.singleValueContainer().decode(String.self)
    guard let outcome = WorkloadOutcome(recorded: text) else {
      throw DecodingError.dataCorrupted(
        .init(
          codingPath: decoder.codingPath,
          debugDescription:
            "'\(text)' is no workload outcome (running, exit status N, ended by signal S, failed: ...)"
        ))
    }
    self = outcome
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(description)
  }
}

extension String {
  /// The rest after `prefix`, or nil when the text does not start with it.
  fileprivate func strippingPrefix(_ prefix: String) -> String? {
    hasPrefix(prefix) ? String(dropFirst(prefix.count)) : nil
  }
}
