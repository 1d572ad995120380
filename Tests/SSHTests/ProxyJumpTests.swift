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

  /// The target and every hop resolve to the user, address and port `ssh -G` gives (a hop
  /// as `ssh -J` runs it: `ssh -l USER -p PORT HOST`, reading the config for its own name):
  /// a hop's user is its own, else its config `User`, else the local account (never root by
  /// default); IPv6 addresses are bracketed in every label.
  @Test func targetAndHopsResolveAsSSHMinusG() throws {
    let dir = try TemporaryDirectory()
    let path = dir.file("config")
    try """
    Host target
      HostName fd00::5
      ProxyJump jumpbox,alice@[fd00::7]:2222,plainhop
    Host jumpbox
      HostName 10.1.2.3
      User bob
      Port 2201
    Host plainhop
      HostName fd00::9
    Host *
      GlobalKnownHostsFile /dev/null

    """.write(toFile: path, atomically: true, encoding: .utf8)
    var options = SSHOptions()
    options.config = SSHConfig(path: path)
    let endpoint = try Endpoint.resolve(SSHTarget(host: "target"), options: options)
    func oracle(_ arguments: [String]) throws -> (user: String, host: String, port: Int) {
      let result = try Tools.run(["ssh", "-F", path, "-G"] + arguments)
      #expect(result.status == 0, "\(result.stderr)")
      var settings: [String: String] = [:]
      for line in result.stdout.split(separator: "\n") {
        let words = line.split(separator: " ", maxSplits: 1).map(String.init)
        if words.count == 2 && settings[words[0]] == nil { settings[words[0]] = words[1] }
      }
      return (settings["user"] ?? "", settings["hostname"] ?? "", Int(settings["port"] ?? "") ?? 0)
    }
    let target = try oracle(["target"])
    #expect(endpoint.user == target.user && endpoint.host == target.host && endpoint.port == target.port)
    #expect(endpoint.label == "\(target.user)@[fd00::5]:22")
    let hops = [["jumpbox"], ["-l", "alice", "-p", "2222", "fd00::7"], ["plainhop"]]
    #expect(endpoint.hops.count == hops.count)
    var labels: [String] = []
    for (hop, arguments) in zip(endpoint.hops, hops) {
      let expected = try oracle(arguments)
      #expect(hop.user == expected.user, "\(arguments)")
      #expect(hop.host == expected.host, "\(arguments)")
      #expect(hop.port == expected.port, "\(arguments)")
      labels.append(SSHTarget.label(user: expected.user, host: expected.host, port: expected.port))
    }
    #expect(endpoint.hops.map(\.label) == labels)
    #expect(labels == ["bob@10.1.2.3:2201", "alice@[fd00::7]:2222", "\(target.user)@[fd00::9]:22"])
  }

  /// A jump host that cannot reach an IPv6 target names it in brackets.
  @Test func aHopNamesAnIPv6TargetInBrackets() throws {
    let lab = try TestLab(hosts: 1, tag: "k")
    var options = lab.options()
    options.proxyJump = [lab.target(0)]
    let error = #expect(throws: SSHError.self) {
      _ = try SSHSession.connect(SSHTarget(user: "root", host: "fd00::dead", port: 2222), options: options)
    }
    #expect(
      error?.message.contains("could not open a connection to [fd00::dead]:2222") == true,
      "\(String(describing: error))")
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
