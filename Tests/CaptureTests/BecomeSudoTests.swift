import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `become: sudo` with a login that is not root: a test user made for the run (and removed),
/// allowed `sudo -n` through a sudoers drop-in. The lab's sshd accepts the lab key for any
/// user. Without the drop-in, the preflight says sudo -n was refused.
@Suite(.serialized) struct BecomeSudo {
  static let user = "smcpairsudo"
  static let sudoers = "/etc/sudoers.d/smcpair-test"

  static func removeUser() {
    _ = try? Tools.run(["userdel", "-f", user])
    try? FileManager.default.removeItem(atPath: sudoers)
  }

  @Test func aNonRootLoginCapturesThroughSudoN() throws {
    _ = try Tools.require("sudo")
    _ = try Tools.require("useradd")
    Self.removeUser()
    defer { Self.removeUser() }
    // Password "*": no password, but not a locked account (sshd refuses keys for "!").
    let created = try Tools.run(["useradd", "-M", "-p", "*", "-s", "/bin/sh", Self.user])
    #expect(created.status == 0, "\(created.stderr)")
    let env = try CaptureLab(hosts: 2, tag: "cs")
    // sshd reads authorized_keys as the user: open the lab's folders for reading.
    for index in 1...2 {
      let keys = env.labFolder + "/hosts/h\(index)/authorized_keys"
      var path = (keys as NSString).deletingLastPathComponent
      while path.hasPrefix(env.lab.stateRoot.path) {
        chmod(path, 0o755)
        path = (path as NSString).deletingLastPathComponent
      }
      chmod(keys, 0o644)
    }
    // The agent goes to a folder only root can write: deployment needs sudo too.
    let agentDir = env.work.file("root-only")
    try FileManager.default.createDirectory(
      atPath: agentDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
    let inventory = try env.editedInventory("sudo.yaml") {
      $0.replacingOccurrences(of: "user: \"root\"", with: "user: \"\(Self.user)\"")
        .replacingOccurrences(of: "become: none", with: "become: sudo")
        .replacingOccurrences(
          of: #"agent: "[^"]*""#, with: "agent: \"\(agentDir)/smcpair-agent\"", options: .regularExpression)
    }
    chmod(env.work.path, 0o755)

    // No sudoers entry yet: refused in the preflight, nothing armed.
    let refused = try env.capture(["--pair", "pair1", "--duration", "1s"], inventory: inventory)
    #expect(refused.status == 1, "\(refused.stdout)\n\(refused.stderr)")
    #expect(refused.stdout.contains("sudo -n"), "\(refused.stdout)")
    #expect(env.agentsGone().isEmpty)

    try "\(Self.user) ALL=(root) NOPASSWD: ALL\n".write(
      toFile: Self.sudoers, atomically: false, encoding: .utf8)
    chmod(Self.sudoers, 0o440)
    // The emulator writes dump records (raw sockets): the workload itself asks for sudo.
    let result = try env.capture(
      [
        "--pair", "pair1", "--json", "--server-cmd", "sudo -n \(env.smcpair) lab peer server --port 7000",
        "--client-cmd", "sudo -n \(env.smcpair) lab peer client --connect {server}:7000 --scenario pingpong",
      ], inventory: inventory)
    #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    let pair = try #require((try env.summary(result)["pairs"] as? [[String: Any]])?.first)
    #expect(pair["state"] as? String == "complete", "\(pair)")
    #expect(pair.object("alignment")["verdict"] as? String == "bounded")
    let folder = try #require(pair["folder"] as? String)
    let record = try env.record(folder)
    for role in ["client", "server"] {
      let preflight = record.object("sides").object(role).object("preflight")
      #expect(preflight["sudo"] as? String == "sudo -n")
    }
    // Deployed through /tmp and 'sudo -n install' + 'mv' into the root-only folder, verified.
    #expect(
      try CaptureLab.sha256(agentDir + "/smcpair-agent") == (try CaptureLab.sha256(env.smcpair + "-agent")))
    var info = stat()
    #expect(stat(agentDir + "/smcpair-agent", &info) == 0 && info.st_uid == 0)
    // Both hosts deployed to this one path at once (the lab's hosts share a file system):
    // each installs under its own temporary name and renames it into place, nothing is left.
    #expect(try FileManager.default.contentsOfDirectory(atPath: agentDir) == ["smcpair-agent"])
    #expect(env.agentsGone().isEmpty)

    // The hosts' own tcpdump through sudo -n: started, signalled and hashed as root, pulled
    // through 'sudo -n cat', its folder removed; nothing left running.
    let tool = try env.capture(
      [
        "--pair", "pair1", "--json", "--engine", "tcpdump", "--filter", "tcp port 7001",
        "--server-cmd", "sudo -n \(env.smcpair) lab peer server --port 7001",
        "--client-cmd", "sudo -n \(env.smcpair) lab peer client --connect {server}:7001 --scenario pingpong",
      ], inventory: inventory)
    #expect(tool.status == 0, "\(tool.stdout)\n\(tool.stderr)")
    let toolPair = try env.onlyPair(tool)
    try env.expectEngines(toolPair, client: "tcpdump", server: "tcpdump")
    try env.expectAlignedAroundZero(toolPair, kinds: ["tcp"])
    try env.expectVerifiedAndRemoved(try #require(toolPair["folder"] as? String), suffix: ".pcap")
    #expect(try env.toolsGone().isEmpty)
  }
}
