import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// What stays on the hosts: the capture files go once pulled and verified (or stay with
/// --keep-remote until `sessions clean`), and a workload a killed coordinator left running is
/// ended by `sessions resume`.
@Suite(.serialized) struct HostLeftovers {
  /// The agent's session folders of a session id on the lab hosts (one shared file system).
  func remoteFolders(_ env: CaptureLab, _ id: String) -> [String] {
    let root = env.agentRoot + "/sessions"
    let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
    return names.filter { $0.hasPrefix(id) }.map { "\(root)/\($0)" }
  }

  @Test func hostCopiesGoAfterAVerifiedPullOrStayUntilClean() throws {
    let env = try CaptureLab(hosts: 2, tag: "rt")
    let first = try env.capture(["--pair", "pair1", "--duration", "1s"])
    #expect(first.status == 0, "\(first.stdout)\n\(first.stderr)")
    let removed = try #require(env.sessionFolders().last)
    let removedID = (removed as NSString).lastPathComponent
    #expect(
      remoteFolders(env, removedID).isEmpty,
      "removed after the verified pull: \(remoteFolders(env, removedID))")
    let record = try env.record(removed)
    for role in ["client", "server"] {
      #expect(record.object("sides").object(role)["remote_copy"] as? String == "removed")
      #expect(FileManager.default.fileExists(atPath: "\(removed)/\(role).pcapng"))
    }

    let kept = try env.capture(["--pair", "pair1", "--duration", "1s", "--keep-remote"])
    #expect(kept.status == 0, "\(kept.stdout)\n\(kept.stderr)")
    let keptFolder = try #require(env.sessionFolders().filter { $0 != removed }.last)
    let keptID = (keptFolder as NSString).lastPathComponent
    #expect(remoteFolders(env, keptID).count == 2, "kept on both hosts")
    #expect(
      try env.record(keptFolder).object("sides").object("client")["remote_copy"] as? String
        == "kept (--keep-remote)")
    let clean = try Tools.run([env.smcpair, "sessions", "clean", keptID, "--out", env.sessions])
    #expect(clean.status == 0, "\(clean.stdout)\n\(clean.stderr)")
    #expect(clean.stdout.contains("h1: removed") && clean.stdout.contains("h2: removed"), "\(clean.stdout)")
    #expect(remoteFolders(env, keptID).isEmpty, "\(remoteFolders(env, keptID))")
    // The local session is untouched.
    #expect(FileManager.default.fileExists(atPath: "\(keptFolder)/client.pcapng"))
  }

  /// Processes in lab host `index` whose command line contains `text`.
  func processes(_ env: CaptureLab, host index: Int, containing text: String) throws -> [Int32] {
    let listed = try Tools.run(["ip", "netns", "pids", env.lab.status.hosts[index].namespace]).stdout
    return listed.split(separator: "\n").compactMap { Int32($0) }.filter { pid in
      guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
      return String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self).contains(text)
    }
  }

  @Test func resumeEndsTheWorkloadAKilledCoordinatorLeftRunning() throws {
    let env = try CaptureLab(hosts: 2, tag: "rw")
    let marker = "sleep 3\(getpid() % 1000)7"
    let process = try env.startCapture(["--pair", "pair1", "--duration", "120s", "--server-cmd", marker])
    for _ in 0..<100 where try processes(env, host: 1, containing: marker).isEmpty { usleep(50_000) }
    #expect(!(try processes(env, host: 1, containing: marker)).isEmpty, "the workload runs")
    // The coordinator records the pid on its next round (every 0.2 s).
    let folder = try #require(env.sessionFolders().first)
    func recordedPID() -> Int? {
      ((try? env.record(folder))?.object("workload").object("server")["pid"]) as? Int
    }
    for _ in 0..<100 where recordedPID() == nil { usleep(50_000) }
    kill(process.pid, SIGKILL)
    _ = process.wait(seconds: 10)
    usleep(300_000)
    #expect(!(try processes(env, host: 1, containing: marker)).isEmpty, "it outlives its coordinator")
    let id = (folder as NSString).lastPathComponent
    let recorded = try env.record(folder).object("workload").object("server")
    #expect(recorded["pid"] as? Int != nil, "session.json holds the workload's pid: \(recorded)")
    let resumed = try Tools.run([env.smcpair, "sessions", "resume", id, "--out", env.sessions])
    #expect(resumed.status == 0, "\(resumed.stdout)\n\(resumed.stderr)")
    var left = try processes(env, host: 1, containing: marker)
    for _ in 0..<100 where !left.isEmpty {
      usleep(50_000)
      left = try processes(env, host: 1, containing: marker)
    }
    let workload = try env.record(folder)["workload"] ?? "none"
    #expect(left.isEmpty, "resume ended the workload: \(left); session.json: \(workload)")
    let log = try env.record(folder).object("sides").object("server")["log"] as? [String] ?? []
    #expect(log.contains { $0.contains("ended the server workload left running") }, "\(log)")
    #expect(
      try env.record(folder).object("workload").object("server")["tag"] as? String == recorded["tag"]
        as? String)
    #expect(env.agentsGone().isEmpty, "agents left: \(env.agentProcesses())")
  }
}
