import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Bad input and hostile input: precise messages, nothing through a shell, nothing touched.
@Suite(.serialized) struct CaptureInputs {
  /// An inventory whose hosts cannot be reached (TEST-NET): a test fails if a host is contacted.
  func unreachableInventory(_ dir: TemporaryDirectory) throws -> String {
    let path = dir.file("unreachable.yaml")
    try """
    hosts:
      c1: {address: 192.0.2.1}
      s1: {address: 192.0.2.2}
    pairs:
      web: {client: c1, server: s1}
    """.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  @Test func brokenInventoriesAndSelectionsGivePreciseMessages() throws {
    let smcpair = try Tools.product("smcpair")
    let dir = try TemporaryDirectory("smcpair-inputs")
    let cases: [(String, String, [String])] = [
      ("hosts:\n  c1:\n    adress: 10.0.0.1\n", "bad.yaml:3:5: unknown key 'adress'", ["--pair", "x"]),
      ("hosts:\n  c1: {address: [\n", "bad.yaml:3:1: YAML syntax error", ["--pair", "x"]),
      (
        "hosts:\n  c1: {}\n  s1: {}\npairs:\n  web: {client: c1, server: s9}\n",
        "bad.yaml:5:29: pair 'web': server 's9' is not a host (did you mean 's1'?)", ["--pair", "web"]
      ),
      (
        "hosts:\n  c1: {}\n  s1: {}\npairs:\n  web: {client: c1, server: s1}\n  web: {client: s1, server: c1}\n",
        "bad.yaml:6:3: 'web' appears twice", ["--pair", "web"]
      ),
      ("hosts:\n  c1: {}\n  s1: {}\n", "is not a pair of", ["--pair", "web"]),
      ("hosts:\n  c1: {}\n  s1: {}\n", "has no pairs", ["--all-pairs"]),
      ("hosts:\n  c1: {}\n  s1: {}\n", "'s2' is not a host", ["--client", "c1", "--server", "s2"]),
      ("[web]\nweb1 ansible_port=70000\n", "bad.yaml:2:1: host 'web1': ansible_port", ["--all-pairs"]),
    ]
    for (text, expected, arguments) in cases {
      let path = dir.file("bad.yaml")
      try text.write(toFile: path, atomically: true, encoding: .utf8)
      let result = try Tools.run([smcpair, "capture", "-i", path] + arguments)
      #expect(result.status == 64, "\(text)")
      #expect(result.stderr.contains(expected), "expected '\(expected)' in: \(result.stderr)")
    }
    let usage: [([String], String)] = [
      (["--pair", "a", "--all-pairs"], "choose the pairs with one of"),
      (["--client", "c1"], "go together"),
      (["--pair", "web", "--duration", "soon"], "is not a duration"),
      (["--pair", "web", "--duration", "5s", "--packets", "10"], "choose one of"),
      (["--pair", "web", "--max-size", "12"], "is not a size"),
      (["--pair", "web", "--formats", "pdf"], "unknown format 'pdf'"),
    ]
    let inventory = try unreachableInventory(dir)
    for (arguments, expected) in usage {
      let result = try Tools.run([smcpair, "capture", "-i", inventory] + arguments)
      #expect(result.status == 64)
      #expect(result.stderr.contains(expected), "expected '\(expected)' in: \(result.stderr)")
    }
  }

  /// A missing inventory (or pairs file) says so in words with exit 66, and a precise
  /// inventory error is not followed by a generic usage line.
  @Test func unreadableInventoriesAreToldInWords() throws {
    let smcpair = try Tools.product("smcpair")
    let dir = try TemporaryDirectory("smcpair-inputs")
    for command in [
      ["capture", "-i", "nope.yaml", "--pair", "web"], ["hosts", "check", "-i", "nope.yaml", "h1"],
    ] {
      let missing = try Tools.run([smcpair] + command)
      #expect(missing.status == 66, "\(command): \(missing.stderr)")
      #expect(
        missing.stderr.contains("cannot read inventory nope.yaml: No such file or directory"),
        "\(missing.stderr)")
      #expect(!missing.stderr.contains(":0:0") && !missing.stderr.contains("Usage:"), "\(missing.stderr)")
    }
    let bad = dir.file("bad.yaml")
    try "hosts:\n  c1: {port: 0}\n".write(toFile: bad, atomically: true, encoding: .utf8)
    let parse = try Tools.run([smcpair, "capture", "-i", bad, "--pair", "web"])
    #expect(parse.status == 64)
    #expect(parse.stderr.contains("bad.yaml:2:"), "\(parse.stderr)")
    #expect(!parse.stderr.contains("Usage:"), "\(parse.stderr)")
    let inventory = try unreachableInventory(dir)
    let pairs = try Tools.run([
      smcpair, "capture", "-i", inventory, "--pairs-file", dir.file("nope-pairs.yaml"), "--pair", "web",
    ])
    #expect(pairs.status == 66, "\(pairs.stderr)")
    #expect(pairs.stderr.contains("cannot read pairs file"), "\(pairs.stderr)")
  }

  @Test func hostileFiltersNeverReachAHost() throws {
    let smcpair = try Tools.product("smcpair")
    let dir = try TemporaryDirectory("smcpair-inputs")
    let inventory = try unreachableInventory(dir)
    let marker = dir.file("pwned")
    for filter in [
      "; rm -rf /", "$(touch \(marker))", "tcp port 80' ; touch \(marker) '", "`touch \(marker)`",
    ] {
      let result = try Tools.run([
        smcpair, "capture", "-i", inventory, "--pair", "web", "--filter", filter, "--connect-timeout", "3",
        "--out", dir.file("sessions"),
      ])
      #expect(result.status == 64, "\(filter): \(result.stdout) \(result.stderr)")
      #expect(result.stderr.contains("does not compile"), "\(result.stderr)")
      // Compiled locally first: no host was contacted (no preflight table, no session folder).
      #expect(!result.stdout.contains("role") && !result.stdout.contains("connecting"))
      #expect(!FileManager.default.fileExists(atPath: dir.file("sessions")))
    }
    // A pair's own filter from the inventory is compiled first too, and named by its line.
    let bad = dir.file("badfilter.yaml")
    try
      "hosts:\n  c1: {address: 192.0.2.1}\n  s1: {address: 192.0.2.2}\npairs:\n  web:\n    client: c1\n    server: s1\n    filter: \"port $(id)\"\n"
      .write(toFile: bad, atomically: true, encoding: .utf8)
    let result = try Tools.run([smcpair, "capture", "-i", bad, "--pair", "web"])
    #expect(result.status == 64)
    #expect(
      result.stderr.contains("badfilter.yaml:5:3: pair 'web': the filter 'port $(id)' does not compile"),
      "\(result.stderr)")
    #expect(!FileManager.default.fileExists(atPath: marker))
  }

  /// A filter that compiles but carries shell syntax, an agent path with quotes and `$(...)`,
  /// and a workload address: all travel as data. The agent is deployed to that literal path,
  /// then found current, then upgraded after it was changed on the host.
  @Test func namesAndPathsAreLiteralAndTheAgentIsDeployedThenCurrentThenUpgraded() throws {
    let env = try CaptureLab(hosts: 2, tag: "cg")
    let marker = env.work.file("pwned")
    let weird = env.work.file("bin dir/it's $(touch \(marker))") + "/smcpair-agent"
    var text = try String(contentsOfFile: env.inventory, encoding: .utf8)
    let agent = try #require(
      text.split(separator: "\n").first { $0.contains("agent: ") && !$0.contains("agent_root") })
    let original = String(agent.split(separator: "\"")[1])
    text = text.replacingOccurrences(
      of: "agent: \"\(original)\"", with: "agent: \"\(weird.replacingOccurrences(of: "\\", with: "\\\\"))\"")
    let inventory = env.work.file("weird.yaml")
    try text.write(toFile: inventory, atomically: true, encoding: .utf8)

    func run() throws -> [String: Any] {
      let result = try env.capture(["--pair", "pair1", "--duration", "1s", "--json"], inventory: inventory)
      #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
      let folder = try #require(
        ((try env.summary(result))["pairs"] as? [[String: Any]])?.first?["folder"] as? String)
      return try env.record(folder)
    }
    func agentState(_ record: [String: Any]) -> [String?] {
      ["client", "server"].map { record.object("sides").object($0).object("preflight")["agent"] as? String }
    }
    // Both lab hosts share this machine's file system: the first side to look deploys.
    let first = try run()
    #expect(agentState(first).contains("deployed"), "\(agentState(first))")
    #expect(FileManager.default.isExecutableFile(atPath: weird))
    #expect(try CaptureLab.sha256(weird) == (try CaptureLab.sha256(original)))
    #expect(!FileManager.default.fileExists(atPath: marker))
    #expect(agentState(try run()) == ["current", "current"])
    // A different binary at that path is replaced (and verified).
    let handle = try #require(FileHandle(forWritingAtPath: weird))
    handle.seekToEndOfFile()
    handle.write(Data("tampered".utf8))
    handle.closeFile()
    let third = try run()
    #expect(agentState(third).contains("upgraded"), "\(agentState(third))")
    #expect(try CaptureLab.sha256(weird) == (try CaptureLab.sha256(original)))
    // A program still running from the old file (writing into it would fail with "Text file
    // busy") does not stop the upgrade: the new binary is renamed over the old name.
    try FileManager.default.removeItem(atPath: weird)
    try FileManager.default.copyItem(atPath: "/bin/sleep", toPath: weird)
    let running = Process()
    running.executableURL = URL(fileURLWithPath: weird)
    running.arguments = ["60"]
    try running.run()
    defer { if running.isRunning { kill(running.processIdentifier, SIGKILL) } }
    let fourth = try run()
    #expect(agentState(fourth).contains("upgraded"), "\(agentState(fourth))")
    #expect(try CaptureLab.sha256(weird) == (try CaptureLab.sha256(original)))
    kill(running.processIdentifier, SIGKILL)
    running.waitUntilExit()
    let folder = (weird as NSString).deletingLastPathComponent
    let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder).filter {
      $0 != "smcpair-agent"
    }
    #expect(leftovers.isEmpty, "temporary agent files left beside the agent: \(leftovers)")
    #expect(!FileManager.default.fileExists(atPath: marker))
    #expect(env.agentsGone().isEmpty)
  }
}
