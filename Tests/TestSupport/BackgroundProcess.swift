import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A child process started with posix_spawn and a clean signal mask.
///
/// Foundation's `Process` passes on the launching thread's blocked signals; test code runs
/// on Dispatch threads that block them, so a child such as tcpdump would never see SIGTERM.
public final class BackgroundProcess: @unchecked Sendable {
  public let pid: pid_t
  public private(set) var exitStatus: Int32?

  public init(_ arguments: [String], stdout: String, stderr: String) throws {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var cArguments = arguments.map { strdup($0) } + [nil]
    defer { for pointer in cArguments { free(pointer) } }
    var child: pid_t = 0
    let result = posix_spawn(&child, arguments[0], &actions, &attributes, &cArguments, environ)
    guard result == 0 else {
      throw NamespaceError(message: "cannot start \(arguments[0]): \(String(cString: strerror(result)))")
    }
    pid = child
  }

  /// Waits for the process to exit; nil if it is still running after `seconds`.
  @discardableResult
  public func wait(seconds: Double) -> Int32? {
    if let exitStatus { return exitStatus }
    let deadline = Date().addingTimeInterval(seconds)
    repeat {
      var status: Int32 = 0
      let result = waitpid(pid, &status, WNOHANG)
      if result == pid {
        exitStatus = status
        return status
      }
      if result < 0 { return nil }
      usleep(5_000)
    } while Date() < deadline
    return nil
  }

  /// SIGTERM, then SIGKILL if it has not exited after `seconds`.
  public func stop(seconds: Double = 10) {
    guard exitStatus == nil else { return }
    kill(pid, SIGTERM)
    if wait(seconds: seconds) == nil {
      kill(pid, SIGKILL)
      wait(seconds: 5)
    }
  }
}
