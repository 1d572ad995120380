import AgentProtocol
import Inventory
import Testing

@testable import Orchestration

/// How a host's engine is chosen from its facts, what the facts script's output means, and the
/// tool engines' command lines and replies.
@Suite struct CaptureEngineChoiceTests {
  static func facts(
    arch: String = "x86_64", os: String = "Linux", tcpdump: Bool = true, smcdumpEx: Bool = false,
    helpers: Bool = true
  ) -> HostFacts {
    var facts = HostFacts()
    facts.architecture = arch
    facts.os = os
    facts.tcpdump = tcpdump ? "/usr/sbin/tcpdump" : nil
    facts.smcdumpEx = smcdumpEx ? "/usr/bin/smcdump-ex" : nil
    facts.hasSetsid = helpers
    facts.hasTimeout = helpers
    facts.hasSHA256Sum = helpers
    return facts
  }

  func choose(
    _ setting: CaptureEngineSetting, _ facts: HostFacts, deploy: Bool = true, dump: Bool = true
  ) -> Result<EngineDecision, EngineRefusal> {
    EngineDecision.choose(
      setting, facts: facts, agentArchitecture: "x86_64", deployAllowed: deploy, dumpWanted: dump)
  }

  @Test func autoPrefersTheAgentThenSmcdumpExThenTcpdump() throws {
    #expect(try choose(.auto, Self.facts(smcdumpEx: true)).get().engine == .agent)
    // aarch64: the x86-64 agent cannot run there.
    let arm = try choose(.auto, Self.facts(arch: "aarch64", smcdumpEx: true)).get()
    #expect(arm.engine == .smcdumpEx)
    #expect(arm.reason.contains("aarch64"), "\(arm.reason)")
    // A policy forbidding binaries on the host.
    let forbidden = try choose(.auto, Self.facts(smcdumpEx: true), deploy: false).get()
    #expect(forbidden.engine == .smcdumpEx)
    #expect(forbidden.reason.contains("deploy_agent: false"))
    // smc_dump: off: no reason to prefer smcdump-ex.
    #expect(
      try choose(.auto, Self.facts(smcdumpEx: true), deploy: false, dump: false).get().engine == .tcpdump)
    let plain = try choose(.auto, Self.facts(arch: "aarch64")).get()
    #expect(plain.engine == .tcpdump)
    #expect(plain.reason.contains("tcpdump cannot turn it on"), "\(plain.reason)")
  }

  @Test func nothingThatFitsIsAnErrorThatSaysWhatIsMissing() {
    guard case .failure(let none) = choose(.auto, Self.facts(arch: "aarch64", tcpdump: false)) else {
      Issue.record("an aarch64 host without tools got an engine")
      return
    }
    #expect(none.message.contains("no smcdump-ex and no tcpdump"))
    guard case .failure(let agent) = choose(.agent, Self.facts(arch: "aarch64")) else {
      Issue.record("engine: agent on aarch64 was accepted")
      return
    }
    #expect(agent.message.contains("aarch64"))
    guard case .failure(let tool) = choose(.smcdumpEx, Self.facts()) else {
      Issue.record("engine: smcdump-ex without smcdump-ex was accepted")
      return
    }
    #expect(tool.message.contains("smcdump_ex:"))
    guard case .failure(let helpers) = choose(.tcpdump, Self.facts(helpers: false)) else {
      Issue.record("tcpdump without setsid/timeout/sha256sum was accepted")
      return
    }
    #expect(helpers.message.contains("setsid, timeout"), "\(helpers.message)")
    guard case .failure(let off) = choose(.smcdumpEx, Self.facts(smcdumpEx: true), dump: false) else {
      Issue.record("engine: smcdump-ex with smc_dump: off was accepted")
      return
    }
    #expect(off.message.contains("smc_dump: off"))
    guard case .failure(let other) = choose(.auto, Self.facts(os: "FreeBSD", tcpdump: false)) else {
      Issue.record("a FreeBSD host without tools got an engine")
      return
    }
    #expect(other.message.contains("FreeBSD"))
  }

  @Test func kernelReleasesSayWhetherTheDumpExists() {
    #expect(DumpSupport(kernel: "5.10.134-18.al8.x86_64") == .anck)
    #expect(DumpSupport(kernel: "5.10.134-19.1.al8.x86_64") == .anck)
    #expect(DumpSupport(kernel: "5.10.134-17.3.al8.x86_64") == .anckLegacy)
    #expect(DumpSupport(kernel: "5.10.134-16.3.an8.x86_64") == .anckTooOld)
    #expect(DumpSupport(kernel: "4.19.91-27.al7.x86_64") == .anckTooOld)
    #expect(DumpSupport(kernel: "6.6.71-3.al8.x86_64") == .anckUndocumented)
    #expect(DumpSupport(kernel: "6.1.0-28-amd64") == .none)
    #expect(DumpSupport(kernel: "5.10.134-18-alpha") == .none)
    #expect(DumpSupport(kernel: "") == .none)
  }

  @Test func theFactsScriptsOutputIsReadAndMadeSafeToShow() {
    let output = """
      Welcome to a host with a chatty motd=yes
      arch=aarch64
      os=Linux
      kernel=5.10.134-18.al8.aarch64\u{1B}[2J
      smc_module=loaded
      tcpdump=/usr/sbin/tcpdump
      tcpdump_version=tcpdump version 4.99.1
      tcpdump_nano=yes
      smcdump_ex=/usr/bin/smcdump-ex
      smcss=
      sha256sum=yes
      timeout=yes
      """
    let facts = HostFacts.parse(output)
    #expect(facts.architecture == "aarch64")
    #expect(facts.kernel == "5.10.134-18.al8.aarch64?[2J")
    #expect(facts.smcModuleLoaded)
    #expect(facts.tcpdumpNanoseconds)
    #expect(facts.smcdumpEx == "/usr/bin/smcdump-ex")
    #expect(facts.smcTools == nil)
    #expect(facts.hasSHA256Sum && facts.hasTimeout && !facts.hasSetsid)
    #expect(HostFacts.parse("kernel=5.10.134-18.al8.aarch64").dumpSupport == .anck)
  }

  @Test func toolCommandLinesFollowTheDocumentedOptions() {
    var facts = Self.facts(smcdumpEx: true)
    facts.tcpdumpNanoseconds = true
    facts.kernel = "5.10.134-17.3.al8.x86_64"
    let plan = CapturePlan(
      session: "s", interfaces: ["eth1"], filter: "tcp port 80",
      stop: StopConditions(durationSeconds: 10, packets: 500), dumpFilter: "udp port 80")
    let dump = HostToolCapture(engine: .smcdumpEx, facts: facts, folder: "/c/s", runsAsRoot: true).argv(plan)
    #expect(Array(dump.prefix(6)) == ["timeout", "-k", "15", "-s", "INT", "10.000"])
    #expect(dump.contains("--legacy"))
    let param = dump[(dump.firstIndex(of: "--param") ?? 0) + 1]
    #expect(param.contains("-w /c/s/capture.pcap") && param.contains("-c 500"))
    #expect(param.contains("--time-stamp-precision=nano") && param.contains("-Z root"))
    #expect(dump.last == "(tcp port 80) or (udp port 80)")
    #expect(Array(dump[6...10]) == ["/usr/bin/smcdump-ex", "-m", "all", "-t", "all"])
    let nic = HostToolCapture(engine: .tcpdump, facts: facts, folder: "/c/s", runsAsRoot: false).argv(plan)
    #expect(nic.contains("eth1") && !nic.contains("any") && !nic.contains("-Z"))
    #expect(nic.last == "tcp port 80")
    var two = plan
    two.interfaces = ["eth1", "eth2"]
    #expect(
      HostToolCapture(engine: .tcpdump, facts: facts, folder: "/c/s", runsAsRoot: true).argv(two).contains(
        "any"))
    #expect(
      HostToolCapture.folder(for: InventoryHost(name: "h", address: "h"), session: "x")
        == "/var/lib/smcpair/captures/x")
  }

  @Test func toolRepliesGiveValuesStatisticsAndLeftDevices() {
    let reply = ToolReply(
      "pid=42\nalive=yes\nleft_device=smc-dummy1a2b\nleft_device=smc-dummy3c4d\nsmcpair-log\n"
        + "tcpdump: listening on any\n120 packets captured\n130 packets received by filter\n10 packets dropped by kernel\n"
    )
    #expect(reply["pid"] == "42")
    #expect(reply.leftDevices == ["smc-dummy1a2b", "smc-dummy3c4d"])
    let statistics = reply.statistics
    #expect(statistics?.captured == 120 && statistics?.received == 130 && statistics?.dropped == 10)
    #expect(ToolReply("pid=1\nsmcpair-log\ntcpdump: eth9: No such device exists\n").statistics == nil)
    #expect(ToolReply("smcpair-log\n").logTail == "(the tool wrote nothing)")
  }
}
