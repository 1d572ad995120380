import Foundation
import SSHTransport
import TestSupport
import Testing

/// ProxyJump as OpenSSH reads it (`ssh -G` is the oracle): tab and `=` separators work, a
/// line OpenSSH refuses is an error naming file:line, never a direct connection.
@Suite(.serialized) struct ProxyJumpLines {
  @Test func jumpLinesAreReadOrRefusedNeverBypassed() throws {
    let lab = try TestLab(hosts: 2, tag: "j")
    let smcpair = try Tools.product("smcpair")
    let dir = try TemporaryDirectory()
    let home = dir.file("home")
    try FileManager.default.createDirectory(atPath: home + "/.ssh", withIntermediateDirectories: true)
    let (h1, h2) = (lab.status.hosts[0].address, lab.status.hosts[1].address)
    // h2 lets the lab key in only from h1: a direct connection cannot log in.
    let authorized = try String(contentsOfFile: lab.authorizedKeys(1), encoding: .utf8)
    try "from=\"\(h1)\" \(authorized)".write(toFile: lab.authorizedKeys(1), atomically: true, encoding: .utf8)
    let common = """
      Host jumpbox
        HostName \(h1)
      Host *
        IdentityFile \(lab.status.identity)
        UserKnownHostsFile \(lab.status.known_hosts)
        GlobalKnownHostsFile /dev/null

      """
    let config = home + "/.ssh/config"
    // $USER is not the default user (OpenSSH takes the local account, root here).
    let environment = ["HOME": home, "USER": "nobody-\(getpid())"]
    for (name, line) in [
      ("tab", "ProxyJump\tjumpbox"), ("equals", "ProxyJump=jumpbox"), ("spaced", "ProxyJump = jumpbox"),
    ] {
      try "Host target\n  HostName \(h2)\n  \(line)\n\(common)".write(
        toFile: config, atomically: true, encoding: .utf8)
      let oracle = try Tools.run(["ssh", "-F", config, "-G", "target"])
      #expect(oracle.status == 0)
      #expect(oracle.stdout.contains("proxyjump jumpbox"), "\(name): \(oracle.stdout)")
      let check = try Tools.run([smcpair, "hosts", "check", "target"], environment: environment)
      #expect(check.status == 0, "\(name): \(check.stdout) \(check.stderr)")
      #expect(check.stdout.contains("target  ok"), "\(name): \(check.stdout)")
    }
    // Lines OpenSSH refuses, in the target's block or in another one.
    for (line, says) in [
      ("  ProxyJump root@\(h1):22x22", "Invalid ProxyJump"), ("  Port 22x", "Bad port"),
      ("Host elsewhere\n  ProxyJump root@\(h1):99999", "Invalid ProxyJump"),
    ] {
      try "Host target\n  HostName \(h2)\n\(line)\n\(common)".write(
        toFile: config, atomically: true, encoding: .utf8)
      let lineNumber = line.hasPrefix("Host") ? 4 : 3
      let oracle = try Tools.run(["ssh", "-F", config, "-G", "target"])
      #expect(oracle.status == 255)
      #expect(oracle.stderr.contains("line \(lineNumber)"), "\(oracle.stderr)")
      let check = try Tools.run([smcpair, "hosts", "check", "target"], environment: environment)
      #expect(check.status == 1)
      #expect(check.stdout.contains("\(config):\(lineNumber): \(says)"), "\(check.stdout) \(check.stderr)")
    }
    // The inventory's jump: an ssh:// target with a bad port is an error naming the file.
    let inventory = dir.file("inventory.yaml")
    let text = try String(contentsOfFile: lab.status.inventory, encoding: .utf8)
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    var edited: [Substring] = []
    var inH2 = false
    for line in lines {
      edited.append(line)
      if line.trimmingCharacters(in: .whitespaces) == "\"h2\":" { inH2 = true }
      if inH2 && line.contains("address:") {
        edited.append(Substring(line.prefix { $0 == " " } + "jump: \"ssh://root@\(h1):22x22\""))
        inH2 = false
      }
    }
    try edited.joined(separator: "\n").write(toFile: inventory, atomically: true, encoding: .utf8)
    let viaInventory = try Tools.run([smcpair, "hosts", "check", "-i", inventory, "h2"])
    #expect(viaInventory.status == 64, "\(viaInventory.stdout) \(viaInventory.stderr)")
    #expect(viaInventory.stderr.contains(inventory), "\(viaInventory.stderr)")
    #expect(viaInventory.stderr.contains("not a valid ssh://"), "\(viaInventory.stderr)")
  }

  @Test func sshConfigTokensAsOpenSSH() throws {
    let config = SSHConfig(
      text:
        "Host a\r\n  ProxyJump\tj1,u@[fd00::1]:2222\r\n  Port=2200\n  UserKnownHostsFile \"/x y\" ~/z\nHost *\n  GlobalKnownHostsFile none\n",
      path: "cfg")
    let resolved = try config.resolve("a")
    #expect(resolved.proxyJump == [SSHTarget(host: "j1"), SSHTarget(user: "u", host: "fd00::1", port: 2222)])
    #expect(resolved.port == 2200)
    #expect(resolved.userKnownHostsFiles == ["/x y", "~/z"])
    #expect(resolved.globalKnownHostsFiles == [])
    let bad = SSHConfig(text: "Host other\n  ProxyJump h:0\n", path: "cfg")
    let error = #expect(throws: SSHError.self) { try bad.resolve("a") }
    #expect(error?.message.hasPrefix("cfg:2: Invalid ProxyJump") == true)
  }
}
