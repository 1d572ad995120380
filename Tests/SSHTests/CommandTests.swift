import Foundation
import SSHTransport
import TestSupport
import Testing

/// `smcpair hosts check`, `hosts trust` and `copy` as a user runs them.
@Suite(.serialized) struct HostsAndCopyCommands {
  @Test func hostsCheckReportsEveryHostAndFailsWhenOneFails() throws {
    let lab = try TestLab(hosts: 2, tag: "w")
    let smcpair = try Tools.product("smcpair")
    let ok = try Tools.run([smcpair, "hosts", "check", "-i", lab.status.inventory, "--json"])
    #expect(ok.status == 0, "\(ok.stderr)")
    let rows = ok.stdout.split(separator: "\n").compactMap {
      try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
    #expect(rows.map { $0["target"] as? String } == ["h1", "h2"])
    for row in rows {
      #expect(row["ok"] as? Bool == true)
      #expect((row["fingerprint"] as? String)?.hasPrefix("SHA256:") == true)
      #expect((row["auth"] as? String)?.hasPrefix("identity file") == true)
      #expect(row["sudo"] as? String == "root")
      #expect((row["kernel"] as? String)?.isEmpty == false)
      #expect(row["round_trip_ms"] is Double || row["round_trip_ms"] is Int)
    }
    // An unreachable host among reachable ones: its own error, exit status 1.
    let mixed = try Tools.run([
      smcpair, "hosts", "check", "-i", lab.status.inventory, "h1",
      "ssh://root@\(lab.status.hosts[1].address):2299",
      "--connect-timeout", "3",
    ])
    #expect(mixed.status == 1)
    #expect(mixed.stdout.contains("h1  ok"))
    #expect(mixed.stdout.contains(":2299  FAILED"))
    #expect(mixed.stdout.contains("cannot connect"))
    // Two inventory hosts at one address (two names for one machine): each row keeps its name.
    let shared = try TemporaryDirectory()
    let text = try String(contentsOfFile: lab.status.inventory, encoding: .utf8)
      .replacingOccurrences(
        of: "\"\(lab.status.hosts[1].address)\"", with: "\"\(lab.status.hosts[0].address)\"")
    try text.write(toFile: shared.file("shared.yaml"), atomically: true, encoding: .utf8)
    let both = try Tools.run([smcpair, "hosts", "check", "-i", shared.file("shared.yaml")])
    #expect(both.status == 0, "\(both.stdout) \(both.stderr)")
    #expect(both.stdout.contains("h1  ok") && both.stdout.contains("h2  ok"), "\(both.stdout)")
    let unknownName = try Tools.run([smcpair, "hosts", "check", "-i", lab.status.inventory, "h9"])
    #expect(unknownName.status == 64)
    #expect(unknownName.stderr.contains("not a host of"))
  }

  @Test func trustRecordsAKeyOnceAndNeverReplacesOne() throws {
    let lab = try TestLab(hosts: 1, tag: "w")
    let smcpair = try Tools.product("smcpair")
    let dir = try TemporaryDirectory()
    let file = dir.file("known_hosts")
    let target = "ssh://root@\(lab.status.hosts[0].address)"
    let refused = try Tools.run([smcpair, "hosts", "trust", target, "--known-hosts", file])
    #expect(refused.status == 1)
    #expect(refused.stderr.contains("pass --yes"))
    let trusted = try Tools.run([smcpair, "hosts", "trust", target, "--known-hosts", file, "--yes"])
    #expect(trusted.status == 0, "\(trusted.stderr)")
    #expect(trusted.stdout.contains("recorded in \(file)"))
    let again = try Tools.run([smcpair, "hosts", "trust", target, "--known-hosts", file, "--yes"])
    #expect(again.stdout.contains("already trusted"))
    // The recorded key now lets a strict check pass.
    let check = try Tools.run([
      smcpair, "hosts", "check", target, "--known-hosts", file, "--identity", lab.status.identity,
    ])
    #expect(check.status == 0, "\(check.stdout) \(check.stderr)")
    // A different key for the host is not replaced.
    let otherKey = dir.file("other")
    try keygen(otherKey, type: "ed25519")
    let otherLine = try String(contentsOfFile: otherKey + ".pub", encoding: .utf8).split(separator: " ")
      .prefix(2).joined(separator: " ")
    try "\(lab.status.hosts[0].address) \(otherLine)\n".write(toFile: file, atomically: true, encoding: .utf8)
    let changed = try Tools.run([smcpair, "hosts", "trust", target, "--known-hosts", file, "--yes"])
    #expect(changed.status == 1)
    #expect(changed.stderr.contains("not replacing it"))
    // A damaged entry for the host (its key no longer decodes as the type it names) is a
    // refusal naming the line, not an unknown host to record.
    let recorded = try String(contentsOfFile: lab.status.known_hosts, encoding: .utf8)
    try recorded.replacingOccurrences(of: "AAAA", with: "AAAB").write(
      toFile: file, atomically: true, encoding: .utf8)
    let damaged = try Tools.run([smcpair, "hosts", "trust", target, "--known-hosts", file, "--yes"])
    #expect(damaged.status == 1)
    #expect(damaged.stderr.contains("\(file):1 names"), "\(damaged.stderr)")
  }

  @Test func copyBothWays() throws {
    let lab = try TestLab(hosts: 1, tag: "w")
    let smcpair = try Tools.product("smcpair")
    let dir = try TemporaryDirectory()
    let source = dir.file("source.bin")
    #expect(try Tools.run(["sh", "-c", "head -c 3000000 /dev/urandom > \(source)"]).status == 0)
    let common = ["--identity", lab.status.identity, "--known-hosts", lab.status.known_hosts]
    let host = "ssh://root@\(lab.status.hosts[0].address)"
    let up = try Tools.run(
      [smcpair, "copy", source, "\(host)\(dir.file("remote.bin"))", "--mode", "600"] + common)
    #expect(up.status == 0, "\(up.stderr)")
    let down = try Tools.run(
      [smcpair, "copy", "\(host)\(dir.file("remote.bin"))", dir.file("back.bin")] + common)
    #expect(down.status == 0, "\(down.stderr)")
    #expect(down.stdout.contains("3000000 bytes"))
    let sums = try Tools.run(["sha256sum", source, dir.file("back.bin")]).stdout.split(separator: "\n").map {
      $0.split(separator: " ").first!
    }
    #expect(sums[0] == sums[1])
    let missing = try Tools.run([smcpair, "copy", "\(host)/nonexistent/file", dir.file("x")] + common)
    #expect(missing.status == 1)
    #expect(missing.stderr.contains("no such file"))
    let usage = try Tools.run([smcpair, "copy", source, dir.file("y")])
    #expect(usage.status == 64)
  }
  /// Resuming a download streams the partial file through the hash: a 280 MB partial of a
  /// 300 MB file costs the same memory as any download (it used to be read whole, twice:
  /// a 328 MB partial took 669 MB resident).
  @Test func resumingALargePartialDownloadStaysInBoundedMemory() throws {
    let lab = try TestLab(hosts: 1, tag: "w")
    let smcpair = try Tools.product("smcpair")
    let dir = try TemporaryDirectory()
    let remote = dir.file("remote.bin")
    let local = dir.file("local.bin")
    #expect(try Tools.run(["sh", "-c", "head -c 300000000 /dev/urandom > \(remote)"]).status == 0)
    #expect(try Tools.run(["sh", "-c", "head -c 280000000 \(remote) > \(local).partial"]).status == 0)
    let run = try MeasuredRun(
      [
        smcpair, "copy", "ssh://root@\(lab.status.hosts[0].address)\(remote)", local, "--identity",
        lab.status.identity, "--known-hosts", lab.status.known_hosts,
      ], in: dir)
    print("resumed copy: exit \(run.status), peak RSS \(run.peakRSSMiB) MiB; \(run.stdout)")
    #expect(run.stoppedBecause == nil, "\(run.stoppedBecause ?? "")")
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stdout.contains("300000000 bytes (resumed at 280000000)"), "\(run.stdout)")
    #expect(run.peakRSSMiB > 0 && run.peakRSSMiB < 100, "\(run.peakRSSMiB) MiB")
    let sums = try Tools.run(["sha256sum", remote, local]).stdout.split(separator: "\n").map {
      $0.split(separator: " ").first!
    }
    #expect(sums.count == 2 && sums[0] == sums[1])
    #expect(!FileManager.default.fileExists(atPath: local + ".partial"))
  }
}
