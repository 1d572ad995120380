import ChildProcess
import Foundation

/// A child process in the background with its output in files, started by
/// `ChildProcess.start` (posix_spawn with a clean signal mask: Foundation's `Process` passes
/// on the launching thread's blocked signals, and test code runs on Dispatch threads that
/// block them, so a child such as tcpdump would never see SIGTERM).
public final class BackgroundProcess: @unchecked Sendable {
  private let process: RunningProcess
  public var pid: Int32 { process.pid }

  public init(_ arguments: [String], stdout: String, stderr: String) throws {
    // Fresh files for every start: ChildProcess appends.
    for path in [stdout, stderr] { try? FileManager.default.removeItem(atPath: path) }
    do {
      process = try ChildProcess.start(arguments, stdout: stdout, stderr: stderr)
    } catch {
      throw NamespaceError(message: "cannot start \(arguments.first ?? ""): \(error.message)")
    }
  }

  /// The exit code, or 128 + the signal; nil if it is still running after `seconds`.
  public var exitStatus: Int32? {
    guard process.poll() else { return nil }
    return process.exitCode ?? process.signal.map { 128 + $0 }
  }

  /// Waits for the process to exit; nil if it is still running after `seconds`.
  @discardableResult
  public func wait(seconds: Double) -> Int32? {
    process.wait(seconds: seconds) ? exitStatus : nil
  }

  /// SIGTERM, then SIGKILL if it has not exited after `seconds`.
  public func stop(seconds: Double = 10) {
    process.stop(seconds: seconds)
  }
}

/// Polls the sizes of `paths` until they stay the same for half a second (at most 10 s).
/// tcpdump loses the packets it has not read yet when it is stopped; its files (written
/// with -U) stop growing once it has caught up, which on a busy machine can take a while.
public func waitUntilFilesStopGrowing(_ paths: [String]) {
  func sizes() -> [Int] {
    paths.map {
      ((try? FileManager.default.attributesOfItem(atPath: $0))?[.size] as? NSNumber)?.intValue ?? -1
    }
  }
  var last = sizes()
  var quiet = 0
  for _ in 0..<100 where quiet < 5 {
    usleep(100_000)
    let now = sizes()
    quiet = now == last ? quiet + 1 : 0
    last = now
  }
}
