import Inventory
import Testing

@Suite struct InventoryParsing {
  func parse(_ text: String) throws(InventoryError) -> Inventory {
    try InventoryParser.parse(text, file: "inv.yaml", baseDirectory: "/etc/smcpair")
  }

  func error(_ text: String) -> InventoryError? {
    do {
      _ = try parse(text)
      return nil
    } catch {
      return error
    }
  }

  @Test func fullInventoryWithDefaults() throws {
    let inventory = try parse(
      """
      defaults:
        user: ops
        identity: keys/id_ed25519
        become: sudo
        nics: [eth0, eth1]
      hosts:
        client-a:
          address: 192.0.2.10
          port: 2222
          smc_dump: required
        server-a:
          address: 192.0.2.20
          nic: bond0
          smc_dump: smc-dummy1234
          jump: bastion
          become: none
          agent: /opt/smcpair-agent
        bastion:
          address: 198.51.100.1
      groups:
        servers: [server-a]
      pairs:
        web:
          client: client-a
          server: server-a
          filter: tcp port 443
          interfaces: [eth0]
      """)
    #expect(inventory.hosts.count == 3)
    let client = try #require(inventory.host("client-a"))
    #expect(client.user == "ops")
    #expect(client.port == 2222)
    #expect(client.identity == "/etc/smcpair/keys/id_ed25519")
    #expect(client.become == .sudo)
    #expect(client.nics == ["eth0", "eth1"])
    #expect(client.smcDump == .required)
    #expect(client.agentPath == Inventory.defaultAgentPath)
    #expect(client.location.line == 7)
    let server = try #require(inventory.host("server-a"))
    #expect(server.nics == ["bond0"])
    #expect(server.smcDump == .device("smc-dummy1234"))
    #expect(server.jump == "bastion")
    #expect(server.become == .none)
    #expect(server.agentPath == "/opt/smcpair-agent")
    #expect(inventory.groups["servers"] == ["server-a"])
    let pair = try #require(inventory.pair("web"))
    #expect(pair.client == "client-a" && pair.server == "server-a")
    #expect(pair.filter == "tcp port 443")
    #expect(pair.interfaces == ["eth0"])
  }

  @Test func unknownKeySuggestsTheRightOne() {
    let e = error("hosts:\n  h1:\n    adress: 10.0.0.1\n")
    #expect(e?.location.line == 3)
    #expect(e?.location.column == 5)
    #expect(e?.message.contains("unknown key 'adress'") == true)
    #expect(e?.message.contains("did you mean 'address'?") == true)
    #expect(e?.description.hasPrefix("inv.yaml:3:5: ") == true)
  }

  @Test func typeAndValueErrorsNameTheSpot() {
    let port = error("hosts:\n  h1:\n    address: a\n    port: 70000\n")
    #expect(port?.location.line == 4)
    #expect(port?.message.contains("port must be a whole number from 1 to 65535") == true)
    let become = error("hosts:\n  h1:\n    become: root\n")
    #expect(become?.location.line == 3)
    #expect(become?.message.contains("become must be 'sudo' or 'none'") == true)
    let nics = error("hosts:\n  h1:\n    nics: {a: b}\n")
    #expect(nics?.message.contains("a name or a list of names") == true)
  }

  /// A relative agent path would be hashed in the login folder and run from the remote PATH:
  /// refused at load, before any host is reached (YAML and Ansible).
  @Test func agentPathsMustBeAbsolute() throws {
    for path in ["smcpair-agent", "bin/smcpair-agent", "~/smcpair-agent", "/opt/../tmp/smcpair-agent"] {
      let e = error("hosts:\n  h1:\n    address: a\n    agent: '\(path)'\n")
      #expect(e?.location.line == 4, "\(path)")
      #expect(
        e?.message.contains("agent path '\(path)' must") == true, "\(e?.message ?? "accepted: \(path)")")
    }
    #expect(error("hosts:\n  h1:\n    address: a\n    agent: /opt/smcpair-agent\n") == nil)
    let ansible = #expect(throws: InventoryError.self) {
      try InventoryParser.parse(
        "[web]\nh1 ansible_host=10.0.0.1 smcpair_agent=smcpair-agent\n", file: "hosts.ini",
        baseDirectory: "/etc/ansible")
    }
    #expect(ansible?.message.contains("must be absolute") == true)
    #expect(ansible?.location.line == 2)
  }

  @Test func referencesMustExist() {
    let pair = error("hosts:\n  h1:\n  h2:\npairs:\n  p:\n    client: h1\n    server: h3\n")
    #expect(pair?.location.line == 7)
    #expect(pair?.message.contains("server 'h3' is not a host") == true)
    #expect(
      pair?.message.contains("did you mean 'h1'?") == true
        || pair?.message.contains("did you mean 'h2'?") == true)
    let same = error("hosts:\n  h1:\npairs:\n  p:\n    client: h1\n    server: h1\n")
    #expect(same?.message.contains("both client and server") == true)
    let half = error("hosts:\n  h1:\npairs:\n  p:\n    client: h1\n")
    #expect(half?.message.contains("needs both 'client:' and 'server:'") == true)
    let group = error("hosts:\n  h1:\ngroups:\n  g: [h1, nope]\n")
    #expect(group?.location.line == 4)
    #expect(group?.message.contains("'nope', which is not a host") == true)
    let jump = error("hosts:\n  h1:\n    jump: gateway\n")
    #expect(jump?.message.contains("jumps through 'gateway'") == true)
  }

  @Test func duplicatesSyntaxAndEmptiness() {
    let duplicate = error("hosts:\n  h1:\n    address: a\n    address: b\n")
    #expect(duplicate?.location.line == 4)
    #expect(duplicate?.message.contains("appears twice") == true)
    let syntax = error("hosts:\n  h1: [unclosed\n  h2:\n")
    #expect(syntax != nil)
    #expect((syntax?.location.line ?? 0) >= 2)
    #expect(syntax?.message.contains("YAML") == true)
    #expect(error("")?.message.contains("empty") == true)
    #expect(error("pairs: {}\n")?.message.contains("no 'hosts:'") == true)
    #expect(error("hosts: {}\n")?.message.contains("empty") == true)
    #expect(error("hosts:\n  'bad name!':\n")?.message.contains("letters, digits") == true)
    #expect(error("- a\n- b\n")?.message.contains("must be a mapping") == true)
  }

  @Test func writerOutputReadsBack() throws {
    let original = try parse(
      """
      hosts:
        h1: {address: 10.0.0.1, smc_dump: smc-dummy0001, identity: /k, known_hosts: /kh}
        "h-2": {address: "10.0.0.2", user: "no", nics: [eth0, "eth 1"]}
      pairs:
        p1: {client: h1, server: h-2, filter: "tcp port 7000 and host 10.0.0.1"}
      groups:
        all: [h1, h-2]
      """)
    let text = InventoryWriter.yaml(original, header: "made by a test")
    let again = try InventoryParser.parse(text, file: "inv.yaml", baseDirectory: "/etc/smcpair")
    #expect(again.hosts.map(\.name) == original.hosts.map(\.name))
    #expect(again.hosts.map(\.user) == ["root", "no"])
    #expect(again.hosts[1].nics == ["eth0", "eth 1"])
    #expect(
      again.pairs
        == original.pairs.map {
          var p = $0; p.location = again.pairs[0].location; return p
        })
    #expect(again.groups == original.groups)
  }

  /// SSH over the management network, SMC over a RoCE subnet: the host's data address is kept
  /// apart, written back, and is the workloads' address; it is per host, never a default.
  @Test func dataAddressIsPerHostAndReadsBack() throws {
    let inventory = try parse(
      """
      hosts:
        h1: {address: mgmt-1.example, data_address: 10.10.1.11, nics: [ens1f0]}
        h2: {address: 192.0.2.12}
      """)
    #expect(inventory.hosts.map(\.dataAddress) == ["10.10.1.11", nil])
    #expect(inventory.hosts.map(\.trafficAddress) == ["10.10.1.11", "192.0.2.12"])
    let again = try InventoryParser.parse(
      InventoryWriter.yaml(inventory), file: "inv.yaml", baseDirectory: "/etc/smcpair")
    #expect(again.hosts.map(\.dataAddress) == ["10.10.1.11", nil])
    #expect(again.hosts[0].address == "mgmt-1.example")
    let inDefaults = error("defaults:\n  data_address: 10.0.0.1\nhosts:\n  h1:\n")
    #expect(
      inDefaults?.message.contains("unknown key 'data_address'") == true, "\(String(describing: inDefaults))")
  }

  @Test func missingFileIsAnError() {
    #expect(throws: InventoryError.self) { try InventoryParser.load(path: "/nonexistent/inventory.yaml") }
  }
}

/// The capture engine settings: `engine:`, `deploy_agent:`, `smcdump_ex:` (also in `defaults:`
/// and as Ansible variables), with errors that name the line and the accepted values.
@Suite struct EngineSettingTests {
  @Test func engineSettingsAreReadFromDefaultsAndHosts() throws {
    let text = """
      defaults:
        engine: tcpdump
        deploy_agent: no
      hosts:
        a: {address: 10.0.0.1}
        b: {address: 10.0.0.2, engine: smcdump-ex, deploy_agent: true, smcdump_ex: /opt/smc/smcdump-ex}
      """
    let inventory = try InventoryParser.parse(text, file: "inv.yaml", baseDirectory: "/")
    let a = try #require(inventory.host("a"))
    let b = try #require(inventory.host("b"))
    #expect(a.engine == .tcpdump && !a.deployAgent && a.smcdumpExPath == nil)
    #expect(b.engine == .smcdumpEx && b.deployAgent && b.smcdumpExPath == "/opt/smc/smcdump-ex")
    // Written and read back the same (session.json keeps the parsed hosts this way).
    let again = try InventoryParser.parse(InventoryWriter.yaml(inventory), file: "w.yaml", baseDirectory: "/")
    #expect(again.hosts.map(\.engine) == inventory.hosts.map(\.engine))
    #expect(again.hosts.map(\.deployAgent) == inventory.hosts.map(\.deployAgent))
    #expect(again.hosts.map(\.smcdumpExPath) == inventory.hosts.map(\.smcdumpExPath))
  }

  @Test func badEngineSettingsNameTheLineAndTheChoices() {
    func problem(_ host: String) -> String {
      do {
        _ = try InventoryParser.parse("hosts:\n  a:\n    \(host)\n", file: "inv.yaml", baseDirectory: "/")
        return "accepted"
      } catch {
        return "\(error)"
      }
    }
    let engine = problem("engine: pcap")
    #expect(engine.contains("inv.yaml:3") && engine.contains("auto|agent|tcpdump|smcdump-ex"), "\(engine)")
    #expect(problem("deploy_agent: maybe").contains("true or false"))
    #expect(problem("smcdump_ex: smcdump-ex").contains("absolute path"))
    #expect(problem("smcdump_ex: /usr/../tmp/x").contains("absolute path"))
  }

  @Test func ansibleVariablesSetTheEngine() throws {
    let ini = """
      [smc]
      web1 ansible_host=10.0.0.1 smcpair_engine=tcpdump smcpair_deploy_agent=false
      db1 ansible_host=10.0.0.2 smcpair_smcdump_ex=/usr/local/bin/smcdump-ex
      """
    let inventory = try InventoryParser.parse(ini, file: "hosts.ini", baseDirectory: "/")
    #expect(inventory.host("web1")?.engine == .tcpdump)
    #expect(inventory.host("web1")?.deployAgent == false)
    #expect(inventory.host("db1")?.smcdumpExPath == "/usr/local/bin/smcdump-ex")
    #expect(throws: InventoryError.self) {
      try InventoryParser.parse("[g]\nh smcpair_engine=magic\n", file: "bad.ini", baseDirectory: "/")
    }
  }
}
