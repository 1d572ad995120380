import Foundation
import Inventory
import Testing

@Suite struct AnsibleInventories {
  func parse(_ text: String, file: String = "hosts.ini") throws(InventoryError) -> Inventory {
    try InventoryParser.parse(text, file: file, baseDirectory: "/etc/ansible")
  }

  func error(_ text: String, file: String = "hosts.ini") -> InventoryError? {
    do {
      _ = try parse(text, file: file)
      return nil
    } catch {
      return error
    }
  }

  @Test func iniWithGroupsChildrenVarsAndRanges() throws {
    let inventory = try parse(
      """
      # production SMC pairs
      bastion ansible_host=198.51.100.1
      [web]
      web[01:03] ansible_user=deploy
      [db]
      db1 ansible_host=192.0.2.20 ansible_port=2222 ansible_ssh_private_key_file=keys/db "smcpair_nics=eth0,eth1"
      [smc:children]
      web
      db
      [smc:vars]
      ansible_become=yes
      smcpair_smc_dump = required
      [all:vars]
      ansible_user=root
      smcpair_agent=/opt/smcpair/smcpair-agent
      """)
    #expect(inventory.hosts.map(\.name) == ["bastion", "web01", "web02", "web03", "db1"])
    let web = try #require(inventory.host("web02"))
    #expect(web.address == "web02")
    #expect(web.user == "deploy")  // host var beats all:vars
    #expect(web.become == .sudo)  // from the parent group smc
    #expect(web.smcDump == .required)
    #expect(web.agentPath == "/opt/smcpair/smcpair-agent")
    let db = try #require(inventory.host("db1"))
    #expect(db.address == "192.0.2.20")
    #expect(db.port == 2222)
    #expect(db.user == "root")
    #expect(db.identity == "/etc/ansible/keys/db")
    #expect(db.nics == ["eth0", "eth1"])
    #expect(db.location.line == 6)
    let bastion = try #require(inventory.host("bastion"))
    #expect(bastion.become == .none)
    #expect(bastion.smcDump == .auto)
    #expect(inventory.groups["smc"].map(Set.init) == Set(["web01", "web02", "web03", "db1"]))
    #expect(inventory.pairs.isEmpty)
  }

  @Test func yamlWithNestedChildrenAndPrecedence() throws {
    let inventory = try parse(
      """
      all:
        vars:
          ansible_user: admin
          ansible_port: 22
        hosts:
          jump1:
            ansible_host: 198.51.100.7
        children:
          smc:
            vars:
              ansible_become: true
              smcpair_nics: [ens1f0, ens1f1]
            children:
              clients:
                hosts:
                  c1: {ansible_host: 10.0.0.1}
                vars:
                  ansible_user: client-user
              servers:
                hosts:
                  s1:
                    ansible_host: 10.0.0.2
                    ansible_port: 2200
                    smcpair_agent_root: /srv/smcpair
      """, file: "hosts.yaml")
    #expect(inventory.hosts.map(\.name) == ["jump1", "c1", "s1"])
    let c1 = try #require(inventory.host("c1"))
    #expect(c1.user == "client-user")  // child group beats parent and all
    #expect(c1.become == .sudo)
    #expect(c1.nics == ["ens1f0", "ens1f1"])
    let s1 = try #require(inventory.host("s1"))
    #expect(s1.user == "admin")
    #expect(s1.port == 2200)
    #expect(s1.agentRoot == "/srv/smcpair")
    #expect(try #require(inventory.host("jump1")).become == .none)
    #expect(inventory.groups["clients"] == ["c1"])
  }

  @Test func dataAddressFromHostVars() throws {
    let inventory = try parse(
      "[smc]\nh1 ansible_host=192.0.2.11 smcpair_data_address=10.10.1.11 smcpair_nics=ens1f0\nh2 ansible_host=192.0.2.12\n"
    )
    #expect(inventory.hosts.map(\.address) == ["192.0.2.11", "192.0.2.12"])
    #expect(inventory.hosts.map(\.dataAddress) == ["10.10.1.11", nil])
    #expect(inventory.hosts[0].nics == ["ens1f0"])
  }

  /// Secret values are hidden before anything is recorded; other values are kept.
  @Test func secretsAreRedacted() {
    let text = """
      ansible_password=hunter2 ansible_user=root
      ansible_become_password: "s3cret word"
      token: !vault |
        $ANSIBLE_VAULT;1.1;AES256
        6162636465
      --db-pass=xyz
      """
    let redacted = SecretRedaction.redact(text)
    for secret in ["hunter2", "s3cret", "6162636465", "xyz"] {
      #expect(!redacted.contains(secret), "\(redacted)")
    }
    #expect(redacted.contains("ansible_user=root") && redacted.contains("ansible_password=<redacted>"))
    #expect(
      SecretRedaction.redact(arguments: ["capture", "--password", "pw1", "--sudo-pass=pw2", "-i", "x.yaml"])
        == ["capture", "--password", "<redacted>", "--sudo-pass=<redacted>", "-i", "x.yaml"])
  }

  @Test func errorsNameTheLineAndWhatToWrite() {
    let badPort = error("[web]\nweb1 ansible_port=99999\n")
    #expect(badPort?.location.line == 2)
    #expect(badPort?.message.contains("ansible_port must be a whole number") == true)
    let badSection = error("[web:hostvars]\nweb1\n")
    #expect(badSection?.location.line == 1)
    #expect(badSection?.message.contains(":vars and :children") == true)
    let badPair = error("[web]\nweb1 ansible_host\n")
    #expect(badPair?.message.contains("is not key=value") == true)
    let badRange = error("[web]\nweb[a:c]\n")
    #expect(badRange?.message.contains("[first:last]") == true)
    let badBecome = error("[web]\nweb1 ansible_become=maybe\n")
    #expect(badBecome?.message.contains("true or false") == true)
    let unclosed = error("[web]\nweb1 \"smcpair_nics=eth0\n")
    #expect(unclosed?.message.contains("not closed") == true)
    let cycle = error("[a:children]\nb\n[b:children]\na\n[a]\nh1\n")
    #expect(cycle?.message.contains("cycle") == true)
    let yamlUnknown = error("all:\n  hosts:\n    h1:\n  chilren:\n    x: {}\n", file: "hosts.yaml")
    #expect(yamlUnknown?.location.line == 4)
    #expect(yamlUnknown?.message.contains("did you mean 'children'") == true)
    let empty = error("[web]\n[db]\n")
    #expect(empty?.message.contains("names no hosts") == true)
  }

  @Test func pairsOverlayNamesInventoryHosts() throws {
    let inventory = try parse("c1 ansible_host=10.0.0.1\ns1 ansible_host=10.0.0.2\n")
    let folder = NSTemporaryDirectory() + "smcpair-pairs-\(getpid())"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let good = folder + "/pairs.yaml"
    try "pairs:\n  web:\n    client: c1\n    server: s1\n    filter: tcp port 443\n".write(
      toFile: good, atomically: true, encoding: .utf8)
    let pairs = try InventoryParser.loadPairs(path: good, for: inventory)
    #expect(pairs.map(\.name) == ["web"])
    #expect(pairs.first?.filter == "tcp port 443")
    let bad = folder + "/bad.yaml"
    try "pairs:\n  web:\n    client: c1\n    server: s2\n".write(
      toFile: bad, atomically: true, encoding: .utf8)
    #expect(throws: InventoryError.self) { try InventoryParser.loadPairs(path: bad, for: inventory) }
    do {
      _ = try InventoryParser.loadPairs(path: bad, for: inventory)
    } catch {
      #expect(error.location.line == 4)
      #expect(error.message.contains("did you mean 's1'"))
    }
    let escaping = folder + "/escape.yaml"
    try "pairs:\n  \"../up\":\n    client: c1\n    server: s1\n".write(
      toFile: escaping, atomically: true, encoding: .utf8)
    #expect(throws: InventoryError.self) { try InventoryParser.loadPairs(path: escaping, for: inventory) }
  }
}

/// The files in inventories/ parse, and the three describe the same hosts.
@Suite struct InventoryExamples {
  var folder: String {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" {
      url.deleteLastPathComponent()
      if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { break }
    }
    return url.path + "/inventories"
  }

  @Test func examplesParseAndAgree() throws {
    let own = try InventoryParser.load(path: folder + "/example.yaml")
    let ini = try InventoryParser.load(path: folder + "/ansible-hosts.ini")
    let yaml = try InventoryParser.load(path: folder + "/ansible-hosts.yaml")
    #expect(own.pairs.map(\.name) == ["orders", "reports"])
    let smcHosts = ["web-1", "web-2", "db-1", "db-2"]
    for name in smcHosts {
      let a = try #require(own.host(name))
      for other in [ini, yaml] {
        let b = try #require(other.host(name))
        #expect(a.address == b.address)
        #expect(a.user == b.user)
        #expect(a.become == b.become)
        #expect(a.nics == b.nics)
        #expect(a.agentRoot == b.agentRoot)
        #expect(a.identity == b.identity)
      }
    }
    let pairs = try InventoryParser.loadPairs(path: folder + "/pairs.yaml", for: ini)
    #expect(pairs.map(\.name) == own.pairs.map(\.name))
    #expect(pairs.map(\.client) == own.pairs.map(\.client))
  }
}

/// Inventories that would expand without bound are refused quickly, with the line.
@Suite struct InventoryExpansionLimits {
  @Test func hostRangesThatMultiplyAreRefused() {
    do {
      _ = try InventoryParser.parse("[web]\nw[0:99]-[0:99]-[0:99]\n", file: "h.ini", baseDirectory: "/")
      Issue.record("a 1,000,000-host pattern was accepted")
    } catch {
      #expect(error.location.line == 2)
      #expect(error.message.contains("more than 10000 hosts"))
    }
  }

  @Test func yamlAliasesThatDoubleEveryLevelAreRefused() {
    var lines = ["x0: &x0 {hosts: {h1: {ansible_host: 10.0.0.1}}}"]
    for level in 1..<40 {
      lines.append("x\(level): &x\(level) {children: {a\(level): *x\(level - 1), b\(level): *x\(level - 1)}}")
    }
    do {
      _ = try InventoryParser.parse(lines.joined(separator: "\n") + "\n", file: "h.yaml", baseDirectory: "/")
      Issue.record("2^39 group walks were accepted")
    } catch {
      #expect(error.message.contains("more than 16 YAML aliases"), "\(error)")
    }
    // Under the alias limit, the group walk is still capped.
    var few = ["x0: &x0 {hosts: {h1: {ansible_host: 10.0.0.1}}}"]
    for level in 1..<8 { few.append("x\(level): &x\(level) {children: {a\(level): *x\(level - 1)}}") }
    #expect(throws: Never.self) {
      _ = try InventoryParser.parse(few.joined(separator: "\n") + "\n", file: "h.yaml", baseDirectory: "/")
    }
  }

  /// Found by fuzzing: a mapping used as a key, built from aliases, made Yams hash an
  /// exponentially large tree while composing.
  @Test func aliasedComplexKeysAreRefusedBeforeParsing() {
    var lines = ["x0: &x0 [a, b]"]
    for level in 1..<30 { lines.append("x\(level): &x\(level) [*x\(level - 1), *x\(level - 1)]") }
    lines.append("? {k: *x29}\n: v")
    do {
      _ = try InventoryParser.parse(lines.joined(separator: "\n") + "\n", file: "h.yaml", baseDirectory: "/")
      Issue.record("accepted")
    } catch {
      #expect(error.location.line == 10)  // the 17th alias
      #expect(error.message.contains("YAML aliases"))
    }
    // Asterisks inside quotes are text, not aliases.
    #expect(throws: Never.self) {
      _ = try InventoryParser.parse(
        "hosts:\n  h1: {address: \"*a *b *c *d *e *f *g *h *i *j *k *l *m *n *o *p *q\"}\n", file: "h.yaml",
        baseDirectory: "/")
    }
  }
}
