import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A command run under `/usr/bin/time` for its peak resident memory, with guards for
/// commands that misbehave: it is killed when its resident memory passes `killAboveMiB`
/// (so a runaway never takes the machine down) or when it is still running after
/// `hangGuard` seconds. The guards are safety nets, not measurements: tests assert the exit
/// status, the output and the peak RSS, never a duration.
public struct MeasuredRun: Sendable {
  public var status: Int32
  public var stdout: String
  public var stderr: String
  /// Peak resident set size of the command, from `/usr/bin/time -f %M`.
  public var peakRSSMiB: Double
  /// Why the guard stopped it, if it did.
  public var stoppedBecause: String?

  public init(
    _ arguments: [String], in directory: TemporaryDirectory, hangGuard: Double = 120,
    killAboveMiB: Double = 1024
  ) throws {
    let time = directory.file("time-\(UInt32.random(in: 0...UInt32.max)).txt")
    let log = directory.file("measured-\(UInt32.random(in: 0...UInt32.max))")
    let process = try BackgroundProcess(
      ["/usr/bin/time", "-f", "%M", "-o", time] + arguments, stdout: log + ".out", stderr: log + ".err")
    var reason: String?
    let started = Date()
    while process.exitStatus == nil {
      if reason == nil, let child = MeasuredRun.child(of: process.pid) {
        if let rss = MeasuredRun.residentMiB(child), rss > killAboveMiB {
          reason = "resident memory passed \(Int(killAboveMiB)) MiB"
          kill(child, SIGKILL)
        } else if Date().timeIntervalSince(started) > hangGuard {
          reason = "still running after \(Int(hangGuard)) s"
          kill(child, SIGKILL)
        }
      }
      usleep(20_000)
    }
    status = process.exitStatus ?? -1
    stdout = (try? String(contentsOfFile: log + ".out", encoding: .utf8)) ?? ""
    let errors = (try? String(contentsOfFile: log + ".err", encoding: .utf8)) ?? ""
    stderr = errors
    let timeText = (try? String(contentsOfFile: time, encoding: .utf8)) ?? ""
    // time prints "Command terminated by signal N" before the number when killed.
    let kib = timeText.split(separator: "\n").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
      .last
    peakRSSMiB = (kib ?? 0) / 1024
    stoppedBecause = reason
    if reason != nil, status == 0 { status = 137 }
  }

  static func child(of pid: Int32) -> Int32? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8) else {
      return nil
    }
    return text.split(separator: " ").first.flatMap { Int32($0) }
  }

  static func residentMiB(_ pid: Int32) -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
      return line.split(separator: " ").dropFirst().first.flatMap { Double($0) }.map { $0 / 1024 }
    }
    return nil
  }
}

extension TestLab {
  /// Makes lab host `index`'s sshd answer every session with `command` (`ForceCommand`), the
  /// way a misconfigured or hostile host would: the line is appended to its sshd_config and
  /// the sshd (found by its pid file) re-reads it on SIGHUP. Returns once it listens again.
  public func forceCommand(host index: Int, _ command: String) throws {
    let folder = "\(stateRoot.path)/\(name)/hosts/h\(index + 1)"
    let config = folder + "/sshd_config"
    let text = try String(contentsOfFile: config, encoding: .utf8)
    try (text + "ForceCommand \(command)\n").write(toFile: config, atomically: true, encoding: .utf8)
    let pidText = try String(contentsOfFile: folder + "/sshd.pid", encoding: .utf8)
    guard let pid = Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)) else {
      throw NamespaceError(message: "no sshd pid in \(folder)/sshd.pid")
    }
    func listening() -> Int {
      let log = (try? String(contentsOfFile: folder + "/sshd.log", encoding: .utf8)) ?? ""
      return log.components(separatedBy: "Server listening on").count - 1
    }
    let before = listening()
    guard kill(pid, SIGHUP) == 0 else { throw NamespaceError(message: "cannot signal sshd \(pid)") }
    for _ in 0..<500 where listening() <= before { usleep(20_000) }
    guard listening() > before else {
      throw NamespaceError(
        message: "sshd of h\(index + 1) did not come back after SIGHUP; see \(folder)/sshd.log")
    }
  }
}
