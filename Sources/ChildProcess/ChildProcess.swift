import Support

#if canImport(Glibc)
  import Glibc
#endif

/// A failure to start or wait for a child process (not a non-zero exit: that is a result).
public struct ProcessError: Error, CustomStringConvertible, Sendable {
  public var command: String
  public var message: String
  public var description: String { "\(command): \(message)" }
}

/// How a child process ended.
public struct ProcessOutput: Sendable {
  /// Exit code, or nil when a signal ended it.
  public var exitCode: Int32?
  /// The signal that ended it, if any.
  public var signal: Int32?
  public var stdout: [UInt8]
  public var stderr: [UInt8]
  /// True when the timeout ended the process.
  public var timedOut: Bool

  public var succeeded: Bool { exitCode == 0 }
  public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
  public var stderrText: String { String(decoding: stderr, as: UTF8.self) }

  /// "exit 1", "signal 9", "timed out".
  public var statusText: String {
    if timedOut { return "timed out" }
    if let exitCode { return "exit \(exitCode)" }
    return "signal \(signal ?? 0)"
  }
}

/// Runs programs with argument vectors (never through a shell), a clean signal mask and
/// default signal dispositions, so children behave the same whatever thread starts them.
public enum ChildProcess {
  /// Directories searched for bare program names, after PATH.
  static let fallbackPath = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]

  /// The absolute path of `program`, or nil when it is not installed.
  public static func locate(_ program: String) -> String? {
    if program.contains("/") { return access(program, X_OK) == 0 ? program : nil }
    var directories: [String] = []
    if let path = getenv("PATH") {
      directories = String(cString: path).split(separator: ":").map(String.init)
    }
    for directory in directories + fallbackPath {
      let candidate = "\(directory)/\(program)"
      if access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
  }

  /// Runs `arguments` to completion and collects its output. `timeout` in seconds kills it
  /// (SIGKILL) when exceeded.
  public static func run(
    _ arguments: [String], stdin: [UInt8]? = nil, timeout: Double? = nil
  ) throws(ProcessError) -> ProcessOutput {
    let command = arguments.joined(separator: " ")
    guard let program = arguments.first, let path = locate(program) else {
      throw ProcessError(
        command: command, message: "\(arguments.first ?? "") is not installed (not found on PATH)")
    }
    let (pid, ends) = try spawnPiped(
      path, arguments, command: command, streams: [0, 1, 2], pipeFailure: "pipe:")
    let (input, childStdout, childStderr) = (ends[0], ends[1], ends[2])
    // Feed stdin (small inputs only; callers pass short texts), then close it. A child that
    // does not read it all (closes its stdin) just gets less.
    if let stdin { try? FileDescriptor(rawValue: input).writeAll(stdin) }
    close(input)

    var output = collectOutput(stdout: childStdout, stderr: childStderr, of: pid, timeout: timeout)
    let status = waitFor(pid)
    output.exitCode = status.exitCode
    output.signal = status.signal
    return output
  }

  /// Reads the child's stdout and stderr until both end, killing the child (SIGKILL) when
  /// `timeout` seconds pass; after the kill, a second without output ends the reading.
  /// Closes both descriptors.
  static func collectOutput(stdout: Int32, stderr: Int32, of pid: pid_t, timeout: Double?) -> ProcessOutput {
    var output = ProcessOutput(exitCode: nil, signal: nil, stdout: [], stderr: [], timedOut: false)
    let deadline = timeout.map { SystemClock.monotonicSeconds() + $0 }
    var open = [stdout, stderr]
    var buffer = [UInt8](repeating: 0, count: 65536)
    while !open.isEmpty {
      var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
      var wait: Int32 = -1
      if let deadline {
        let left = deadline - SystemClock.monotonicSeconds()
        if left <= 0 {
          kill(pid, SIGKILL)
          output.timedOut = true
          wait = 1000
        } else {
          wait = Int32(min(left * 1000, 1000)) + 1
        }
      }
      let ready = poll(&fds, nfds_t(fds.count), wait)
      if ready < 0 {
        if errno == EINTR { continue }
        break
      }
      for entry in fds where entry.revents != 0 {
        switch readSome(entry.fd, into: &buffer) {
        case .bytes(let n) where entry.fd == stdout: output.stdout += buffer[0..<n]
        case .bytes(let n): output.stderr += buffer[0..<n]
        case .nothingYet: break
        case .ended:
          close(entry.fd)
          open.removeAll { $0 == entry.fd }
        }
      }
      if output.timedOut && ready == 0 { break }
    }
    for fd in open { close(fd) }
    return output
  }

  /// What one read of a child's output gave.
  enum ReadResult {
    case bytes(Int)
    /// Nothing to read now (a non-blocking descriptor); try again after the next poll.
    case nothingYet
    /// End of file, or an error: the descriptor is done.
    case ended
  }

  static func readSome(_ fd: Int32, into buffer: inout [UInt8]) -> ReadResult {
    do {
      let n = try FileDescriptor(rawValue: fd).read(into: &buffer)
      return n > 0 ? .bytes(n) : .ended
    } catch {
      return error == .wouldBlock ? .nothingYet : .ended
    }
  }

  /// Starts `arguments` in the background with output to files (or /dev/null).
  public static func start(_ arguments: [String], stdout: String? = nil, stderr: String? = nil)
    throws(ProcessError)
    -> RunningProcess
  {
    let command = arguments.joined(separator: " ")
    guard let program = arguments.first, let path = locate(program) else {
      throw ProcessError(
        command: command, message: "\(arguments.first ?? "") is not installed (not found on PATH)")
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdout ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, stderr ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
    do {
      return RunningProcess(pid: try spawn(path, arguments, actions: &actions), command: command)
    } catch {
      throw ProcessError(command: command, message: error.message)
    }
  }

  /// Starts `arguments` in the background talking over pipes: `input` is the child's stdin
  /// (write end), `output` its stdout (read end); stderr is inherited. The caller closes both.
  public static func startWithPipes(_ arguments: [String]) throws(ProcessError)
    -> (process: RunningProcess, input: Int32, output: Int32)
  {
    let command = arguments.joined(separator: " ")
    guard let program = arguments.first, let path = locate(program) else {
      throw ProcessError(
        command: command, message: "\(arguments.first ?? "") is not installed (not found on PATH)")
    }
    let (pid, ends) = try spawnPiped(
      path, arguments, command: command, streams: [0, 1], pipeFailure: "pipe failed:")
    return (RunningProcess(pid: pid, command: command), ends[0], ends[1])
  }

  /// Spawns `path` with a pipe on each of the child's `streams` (0 stdin, 1 stdout, 2 stderr);
  /// the pid and the parent's end of each pipe, in the order of `streams`. The child's ends
  /// are closed here. `pipeFailure` starts the message when a pipe cannot be made.
  static func spawnPiped(
    _ path: String, _ arguments: [String], command: String, streams: [Int32], pipeFailure: String
  ) throws(ProcessError) -> (pid: pid_t, ends: [Int32]) {
    var pipes: [[Int32]] = []
    for _ in streams {
      var pipe: [Int32] = [-1, -1]
      guard makePipe(&pipe) else {
        let error = Errno.current
        for fd in pipes.joined() { close(fd) }
        throw ProcessError(command: command, message: "\(pipeFailure) \(error)")
      }
      pipes.append(pipe)
    }
    // The child reads its stdin from a pipe's read end and writes the others into write ends.
    let childEnds = zip(streams, pipes).map { stream, pipe in stream == 0 ? pipe[0] : pipe[1] }
    let parentEnds = zip(streams, pipes).map { stream, pipe in stream == 0 ? pipe[1] : pipe[0] }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    for (stream, end) in zip(streams, childEnds) { posix_spawn_file_actions_adddup2(&actions, end, stream) }
    let pid: pid_t
    do {
      pid = try spawn(path, arguments, actions: &actions)
    } catch {
      for fd in pipes.joined() { close(fd) }
      throw ProcessError(command: command, message: error.message)
    }
    for end in childEnds { close(end) }
    return (pid, parentEnds)
  }

  struct SpawnFailure: Error { var message: String }

  /// A pipe whose ends close on exec (pipe2 is not visible from Swift's Glibc).
  static func makePipe(_ fds: inout [Int32]) -> Bool {
    guard pipe(&fds) == 0 else { return false }
    for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    return true
  }

  static func spawn(_ path: String, _ arguments: [String], actions: inout posix_spawn_file_actions_t)
    throws(SpawnFailure) -> pid_t
  {
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD, SIGQUIT, SIGUSR1, SIGUSR2] {
      sigaddset(&defaults, signal)
    }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var cArguments = arguments.map { strdup($0) } + [nil]
    defer { for pointer in cArguments { free(pointer) } }
    var pid: pid_t = 0
    let result = posix_spawn(&pid, path, &actions, &attributes, &cArguments, environ)
    guard result == 0 else {
      throw SpawnFailure(message: "cannot start: \(Errno(rawValue: result))")
    }
    return pid
  }

  static func waitFor(_ pid: pid_t) -> (exitCode: Int32?, signal: Int32?) {
    var status: Int32 = 0
    guard (try? retryingInterrupts({ waitpid(pid, &status, 0) })) != nil else { return (nil, nil) }
    return decode(status)
  }

  static func decode(_ status: Int32) -> (exitCode: Int32?, signal: Int32?) {
    let signal = status & 0x7F
    if signal == 0 { return ((status >> 8) & 0xFF, nil) }
    return (nil, signal)
  }
}

/// A child started with `ChildProcess.start`. Only this process is ever signalled.
public final class RunningProcess: @unchecked Sendable {
  public let pid: pid_t
  public let command: String
  public private(set) var exitCode: Int32?
  public private(set) var signal: Int32?
  private var reaped = false

  init(pid: pid_t, command: String) {
    self.pid = pid
    self.command = command
  }

  /// Reaps the child if it has exited; true when it has.
  @discardableResult
  public func poll() -> Bool {
    if reaped { return true }
    var status: Int32 = 0
    let result = waitpid(pid, &status, WNOHANG)
    if result == pid {
      (exitCode, signal) = ChildProcess.decode(status)
      reaped = true
    } else if result < 0 {
      reaped = true
    }
    return reaped
  }

  /// Waits up to `seconds` for the child to exit; true when it has.
  @discardableResult
  public func wait(seconds: Double) -> Bool {
    let deadline = SystemClock.monotonicSeconds() + seconds
    while !poll() {
      if SystemClock.monotonicSeconds() >= deadline { return false }
      usleep(5_000)
    }
    return true
  }

  /// SIGTERM, then SIGKILL after `seconds`.
  public func stop(seconds: Double = 5) {
    guard !poll() else { return }
    kill(pid, SIGTERM)
    if !wait(seconds: seconds) {
      kill(pid, SIGKILL)
      wait(seconds: 5)
    }
  }
}
