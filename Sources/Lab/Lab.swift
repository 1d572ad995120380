import ChildProcess
import Foundation
import Inventory

/// How a lab's hosts are wired (`lab up --single-network`).
public enum LabNetworkLayout: String, Sendable, CaseIterable {
  /// eth0 on the management bridge (sshd, the inventory's `address`) and data0 on a separate
  /// data bridge (workloads, the SMC peer emulator), as SMC-R fleets log in over a management
  /// network and run SMC over RoCE subnets.
  case managementAndData = "management-and-data"
  /// eth0 only: SSH and the workloads share one address.
  case single
}

/// The local lab: hosts in network namespaces on a management bridge (and, by default, a data
/// bridge), each with its own OpenSSH sshd and a stand-in SMC dump device. See docs/lab.md.
public struct Lab: Sendable {
  public static let maximumHosts = 64
  public let name: String
  /// Folder holding every lab's state (`<root>/<name>/`).
  public let stateRoot: String

  public init(name: String, stateRoot: String? = nil) throws(LabError) {
    guard !name.isEmpty, name.count <= 8, name.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber) })
    else {
      throw LabError(
        "lab name '\(name)' must be 1 to 8 lower-case letters or digits (it becomes part of interface names, which Linux limits to 15 characters)"
      )
    }
    self.name = name
    self.stateRoot = stateRoot ?? Lab.defaultStateRoot
  }

  /// `$SMCPAIR_LAB_ROOT`, else `$XDG_STATE_HOME/smcpair/labs`, else `~/.local/state/smcpair/labs`.
  public static var defaultStateRoot: String {
    let environment = ProcessInfo.processInfo.environment
    if let root = environment["SMCPAIR_LAB_ROOT"], !root.isEmpty { return root }
    let state =
      environment["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
      ?? (environment["HOME"] ?? "/root") + "/.local/state"
    return state + "/smcpair/labs"
  }

  public var directory: String { "\(stateRoot)/\(name)" }
  var statePath: String { "\(directory)/lab.json" }
  var bridge: String { "smcb-\(name)" }
  var dataBridge: String { "smcd-\(name)" }
  func namespace(_ index: Int) -> String { "smcpair-\(name)-h\(index)" }
  func rootLink(_ index: Int) -> String { "smcv\(name)h\(index)" }
  func dataRootLink(_ index: Int) -> String { "smcd\(name)h\(index)" }
  /// The data interface inside every host of a two-network lab.
  public static let dataInterface = "data0"
  static func dumpDevice(_ index: Int) -> String { "smc-dummy" + hex4(index) }
  static func hex4(_ value: Int) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
  }

  /// The recorded state, if this lab was (at least partly) brought up.
  public func state() -> LabState? { try? LabState.load(from: statePath) }

  // MARK: - up

  /// Brings the lab up with `hosts` hosts wired as `layout`; does nothing when it is already up
  /// and healthy with that many hosts and that layout. `agentPath` is written into the inventory.
  @discardableResult
  public func up(
    hosts count: Int, layout: LabNetworkLayout = .managementAndData, agentPath: String,
    agentless: Set<String> = [], log: (String) -> Void = { _ in }
  ) throws(LabError) -> LabState {
    let sshd = try Self.checkPrerequisites(hosts: count)
    let names = Set((1...max(count, 1)).map { "h\($0)" })
    if let unknown = agentless.subtracting(names).sorted().first {
      throw LabError("--agentless \(unknown): the lab's hosts are h1..h\(count)")
    }
    if let existing = state() {
      if existing.complete && existing.hosts.count == count && existing.layout == layout
        && health(existing).allSatisfy(\.healthy)
      {
        // The inventory is rewritten: which hosts are agentless may have changed.
        try installStandIns(existing)
        try write(inventoryYAML(existing, agentPath: agentPath, agentless: agentless), to: existing.inventory)
        log("lab '\(name)' is already up with \(count) hosts")
        return existing
      }
      log(
        "lab '\(name)' exists but is incomplete, unhealthy, of another size or layout: taking it down first")
      try down(log: log)
    }
    try makeDirectory(directory)
    var state = try plan(hosts: count, layout: layout)
    // Record the plan before touching anything, so `down` can always undo.
    try save(state)

    try run([
      "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "smcpair-lab-\(name)", "-f", state.identity,
    ])
    let clientKey = try read("\(state.identity).pub")
    try wireRootNamespace(state)
    var knownHosts: [String] = []
    for index in state.hosts.indices {
      knownHosts.append(try configureHost(&state.hosts[index], sshd: sshd, clientKey: clientKey))
      try save(state)
    }
    try write(knownHosts.joined(separator: "\n") + "\n", to: state.knownHosts)
    try expectSSHD(on: state.hosts)
    try installStandIns(state)
    try write(inventoryYAML(state, agentPath: agentPath, agentless: agentless), to: state.inventory)
    state.complete = true
    try save(state)
    log("lab '\(name)' is up: \(count) hosts, inventory \(state.inventory)")
    return state
  }

  /// Fails unless `count` hosts are allowed, we are root and the tools are installed; returns
  /// the path of sshd.
  static func checkPrerequisites(hosts count: Int) throws(LabError) -> String {
    guard (1...Lab.maximumHosts).contains(count) else {
      throw LabError("--hosts must be between 1 and \(Lab.maximumHosts), not \(count)")
    }
    guard getuid() == 0 else {
      throw LabError("the lab creates network namespaces and starts sshd: run it as root")
    }
    for tool in ["ip", "ssh-keygen", "sysctl", "mount", "sh"] where ChildProcess.locate(tool) == nil {
      throw LabError(
        "\(tool) is not installed; run ./scripts/install-deps (or apt-get install iproute2 openssh-client)")
    }
    guard let sshd = ChildProcess.locate("/usr/sbin/sshd") else {
      throw LabError("/usr/sbin/sshd is not installed; apt-get install openssh-server")
    }
    return sshd
  }

  /// The lab to build: free subnets, and every host's names and addresses (nothing built yet).
  func plan(hosts count: Int, layout: LabNetworkLayout) throws(LabError) -> LabState {
    let subnet = try chooseSubnet(in: "10.213", for: "lab bridge")
    let dataSubnet = layout == .managementAndData ? try chooseSubnet(in: "10.214", for: "data bridge") : nil
    return LabState(
      name: name, directory: directory, bridge: bridge, bridgeAddress: "\(subnet).1", prefixLength: 24,
      dataBridge: dataSubnet == nil ? nil : dataBridge,
      inventory: "\(directory)/inventory.yaml", identity: "\(directory)/id_ed25519",
      knownHosts: "\(directory)/known_hosts",
      hosts: (1...count).map { index in
        LabHost(
          name: "h\(index)", namespace: namespace(index), address: "\(subnet).\(10 + index)", port: 22,
          dataAddress: dataSubnet.map { "\($0).\(10 + index)" },
          dataRootLink: dataSubnet == nil ? nil : dataRootLink(index),
          dumpDevice: Lab.dumpDevice(index), rootLink: rootLink(index),
          directory: "\(directory)/hosts/h\(index)", sshdPID: nil)
      }, complete: false)
  }

  /// The root namespace: the bridges, every namespace and every veth pair, in one batch.
  func wireRootNamespace(_ state: LabState) throws(LabError) {
    var batch = [
      "link add \(bridge) type bridge", "addr add \(state.bridgeAddress)/24 dev \(bridge)",
      "link set \(bridge) up",
    ]
    if let dataBridge = state.dataBridge {
      // No address on the data bridge: the root namespace (the workstation) does not reach
      // the data subnet, as a management host does not reach a RoCE subnet.
      batch += ["link add \(dataBridge) type bridge", "link set \(dataBridge) up"]
    }
    for host in state.hosts {
      batch += [
        "netns add \(host.namespace)",
        "link add \(host.rootLink) type veth peer name eth0 netns \(host.namespace)",
        "link set \(host.rootLink) master \(bridge) up",
      ]
      if let dataBridge = state.dataBridge, let link = host.dataRootLink {
        batch += [
          "link add \(link) type veth peer name \(Lab.dataInterface) netns \(host.namespace)",
          "link set \(link) master \(dataBridge) up",
        ]
      }
    }
    try ipBatch(batch)
    for device in [bridge] + (state.dataBridge.map { [$0] } ?? []) {
      _ = try? ChildProcess.run(["sysctl", "-q", "-w", "net.ipv6.conf.\(device).disable_ipv6=1"])
    }
  }

  /// Inside one host's namespace: addresses, the stand-in dump device and sshd; returns the
  /// host's known_hosts line.
  func configureHost(_ host: inout LabHost, sshd: String, clientKey: String) throws(LabError) -> String {
    // IPv6 off first, so no device gets a link-local address (no router solicitations).
    try run([
      "ip", "netns", "exec", host.namespace, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
      "net.ipv6.conf.default.disable_ipv6=1",
    ])
    let data =
      host.dataAddress.map {
        ["addr add \($0)/24 dev \(Lab.dataInterface)", "link set \(Lab.dataInterface) up"]
      }
      ?? []
    try ipBatch(
      data + [
        "addr add \(host.address)/24 dev eth0", "link set eth0 up", "link set lo up",
        // ifb: frames sent on it are captured once, as outgoing, like the real dummy device.
        // MTU 65535: data records up to the emulator's 8 KiB record size fit in one frame.
        "link add \(host.dumpDevice) type ifb", "link set \(host.dumpDevice) mtu 65535",
        "link set \(host.dumpDevice) up",
      ], namespace: host.namespace)
    return try startSSHD(host: &host, sshd: sshd, clientKey: clientKey)
  }

  /// Fails unless every host's sshd accepts connections (with its log when one does not).
  func expectSSHD(on hosts: [LabHost]) throws(LabError) {
    for host in hosts {
      guard TCPProbe.canConnect(to: host.address, port: UInt16(host.port), timeout: 5) else {
        let logText = (try? read("\(host.directory)/sshd.log")) ?? ""
        throw LabError(
          "sshd on \(host.name) (\(host.address)) does not accept connections; its log says: \(logText)")
      }
    }
  }

  func startSSHD(host: inout LabHost, sshd: String, clientKey: String) throws(LabError) -> String {
    let dir = host.directory
    try makeDirectory("\(dir)/run/sshd")
    let key = "\(dir)/ssh_host_ed25519_key"
    try run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "smcpair-lab-\(host.name)", "-f", key])
    try write(clientKey, to: "\(dir)/authorized_keys")
    let config = """
      # sshd for lab host \(host.name); made by smcpair lab up
      Port \(host.port)
      ListenAddress \(host.address)
      HostKey \(key)
      PidFile \(dir)/sshd.pid
      UsePAM no
      PermitRootLogin prohibit-password
      AuthorizedKeysFile \(dir)/authorized_keys
      StrictModes no
      PasswordAuthentication no
      KbdInteractiveAuthentication no
      UseDNS no
      ClientAliveInterval 15
      ClientAliveCountMax 3
      Subsystem sftp internal-sftp
      """
    try write(config + "\n", to: "\(dir)/sshd_config")
    // sshd needs its privilege-separation folder in /run; `ip netns exec` runs us in a
    // private mount namespace, so a per-host folder is bind-mounted over /run there only.
    // The script is fixed text; the paths are passed as arguments, never interpolated.
    try run([
      "ip", "netns", "exec", host.namespace, "sh", "-c",
      "mount -n --bind \"$1\" /run && exec \"$2\" -f \"$3\" -E \"$4\"", "smcpair-lab", "\(dir)/run", sshd,
      "\(dir)/sshd_config", "\(dir)/sshd.log",
    ])
    for _ in 0..<200 {
      if let text = try? read("\(dir)/sshd.pid"),
        let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
      {
        host.sshdPID = pid
        break
      }
      usleep(10_000)
    }
    guard host.sshdPID != nil else {
      throw LabError("sshd on \(host.name) did not start; see \(dir)/sshd.log")
    }
    let publicKey = try read("\(key).pub").split(separator: " ").prefix(2).joined(separator: " ")
    return "\(host.address) \(publicKey)"
  }

  /// Where the stand-in `smcdump-ex` lives (the lab's folder; every host sees it).
  public var standInSMCDumpEx: String { "\(directory)/bin/smcdump-ex" }

  /// Writes the stand-in tools into the lab's folder.
  func installStandIns(_ state: LabState) throws(LabError) {
    try makeDirectory("\(directory)/bin")
    try write(SMCDumpExStandIn.script, to: standInSMCDumpEx)
    chmod(standInSMCDumpEx, 0o755)
  }

  /// The lab's inventory; hosts in `agentless` may not get the agent (`deploy_agent: false`),
  /// so `auto` picks another engine there.
  func inventoryYAML(_ state: LabState, agentPath: String, agentless: Set<String> = []) -> String {
    let hosts = state.hosts.map { host in
      InventoryHost(
        name: host.name, address: host.address, port: host.port, user: "root", identity: state.identity,
        knownHosts: state.knownHosts, jump: nil, become: .none,
        // The SMC traffic is on the data NIC, so that is what a user captures (with the dump
        // device); SSH stays on eth0, out of the capture.
        nics: [host.dataAddress == nil ? "eth0" : Lab.dataInterface], dataAddress: host.dataAddress,
        smcDump: .device(host.dumpDevice),
        agentPath: agentPath, agentRoot: "\(directory)/agent", deployAgent: !agentless.contains(host.name),
        smcdumpExPath: standInSMCDumpEx,
        location: SourceLocation(file: state.inventory, line: 0, column: 0))
    }
    var pairs: [InventoryPair] = []
    for index in stride(from: 0, to: hosts.count - 1, by: 2) {
      pairs.append(
        InventoryPair(
          name: "pair\(index / 2 + 1)", client: hosts[index].name, server: hosts[index + 1].name, filter: nil,
          interfaces: nil, location: SourceLocation(file: state.inventory, line: 0, column: 0)))
    }
    let inventory = Inventory(
      path: state.inventory, hosts: hosts, groups: ["all": hosts.map { $0.name }], pairs: pairs)
    return InventoryWriter.yaml(
      inventory,
      header:
        "Inventory of smcpair lab '\(name)' (written by 'smcpair lab up'; rewritten on every up).\nHosts are network namespaces; smc_dump names each host's stand-in dump device; smcdump_ex is\nthe lab's stand-in for smc-tools' smcdump-ex (not the real tool); hosts made with --agentless say deploy_agent false;\naddress is the SSH (management) address, data_address the one workloads use ({server}, {client})."
    )
  }

  // MARK: - down

  /// Removes everything `up` made: sshd processes (only the ones it started), veth pairs,
  /// namespaces, the bridge and the state folder. Safe to repeat, and works after a
  /// crashed `up` from the recorded names.
  public func down(log: (String) -> Void = { _ in }) throws(LabError) {
    let recorded = state()
    var namespaces = Set(recorded?.hosts.map(\.namespace) ?? [])
    var links = Set(recorded?.hosts.map(\.rootLink) ?? [])
    links.formUnion(recorded?.hosts.compactMap(\.dataRootLink) ?? [])
    // Also whatever follows this lab's naming, in case the state file was lost.
    if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/run/netns") {
      namespaces.formUnion(entries.filter { $0.hasPrefix("smcpair-\(name)-h") })
    }
    if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net") {
      links.formUnion(entries.filter { $0.hasPrefix("smcv\(name)h") || $0.hasPrefix("smcd\(name)h") })
    }
    var stopped = 0
    for host in recorded?.hosts ?? [] {
      var pids: [Int32] = []
      if let pid = host.sshdPID { pids.append(pid) }
      if let text = try? read("\(host.directory)/sshd.pid"),
        let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
      {
        pids.append(pid)
      }
      for pid in Set(pids) where isOurSSHD(pid, config: "\(host.directory)/sshd_config") {
        Lab.stop([pid])
        stopped += 1
      }
    }
    // An sshd whose state was lost still names this lab's folder in its command line.
    for pid in Lab.processes(mentioning: "\(directory)/hosts/") where Lab.isRunning(pid) {
      Lab.stop([pid])
      stopped += 1
    }
    // Whatever still runs inside the lab's namespaces was started there for the lab: sshd
    // session processes whose client vanished, agents, emulators. They would keep a deleted
    // namespace alive; stop them by PID.
    for namespace in namespaces.sorted() {
      guard let output = try? ChildProcess.run(["ip", "netns", "pids", namespace]), output.exitCode == 0
      else {
        continue
      }
      let pids = output.stdoutText.split(separator: "\n").compactMap { Int32($0) }
      Lab.stop(pids)
      stopped += pids.count
    }
    var batch: [String] = []
    for link in links.sorted() where FileManager.default.fileExists(atPath: "/sys/class/net/\(link)") {
      batch.append("link del \(link)")
    }
    for namespace in namespaces.sorted() { batch.append("netns del \(namespace)") }
    for device in [bridge, dataBridge]
    where FileManager.default.fileExists(atPath: "/sys/class/net/\(device)") {
      batch.append("link del \(device)")
    }
    if !batch.isEmpty {
      // -force: keep going past links that vanished with their namespace.
      _ = try? ChildProcess.run(
        ["ip", "-force", "-batch", "-"], stdin: Array((batch.joined(separator: "\n") + "\n").utf8))
    }
    if FileManager.default.fileExists(atPath: directory) {
      do {
        try FileManager.default.removeItem(atPath: directory)
      } catch {
        throw LabError("cannot remove \(directory): \(error.localizedDescription)")
      }
    }
    log("lab '\(name)' is down (\(namespaces.count) namespaces, \(stopped) processes stopped)")
  }

  /// SIGTERM to every pid, up to 1 s for them to exit, then SIGKILL, and waits until none
  /// runs: a following `lab up` never meets them. (An exited process may stay a zombie until
  /// its reaper — PID 1 — collects it; it holds no socket, namespace or file then.)
  static func stop(_ pids: [Int32]) {
    for pid in pids { kill(pid, SIGTERM) }
    for pid in pids {
      for _ in 0..<200 where isRunning(pid) { usleep(5_000) }
      if isRunning(pid) { kill(pid, SIGKILL) }
    }
    for pid in pids {
      while isRunning(pid) { usleep(2_000) }
    }
  }

  /// sshd processes whose command line contains `text` (this lab's host folders).
  static func processes(mentioning text: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap(Int32.init).filter { pid in
      guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
      let line = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
      return line.contains("sshd") && line.contains(text)
    }
  }

  /// True while `pid` exists and is not a zombie (a daemon's zombie may wait for its reaper).
  static func isRunning(_ pid: Int32) -> Bool {
    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return false }
    let text = String(decoding: data, as: UTF8.self)
    guard let close = text.lastIndex(of: ")") else { return false }
    let state = text[text.index(after: close)...].trimmingCharacters(in: .whitespaces).first
    return state != "Z" && state != "X"
  }

  /// True when `pid` is an sshd started with this lab's config (never signal anything else).
  func isOurSSHD(_ pid: Int32, config: String) -> Bool {
    guard pid > 1, Lab.isRunning(pid), let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")
    else { return false }
    // sshd rewrites its title ("sshd: /usr/sbin/sshd -f CONFIG ... [listener] ..."), so look
    // at the whole command line as text.
    let text = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
    return text.contains("sshd") && text.contains(" -f \(config)")
  }

  // MARK: - status

  public struct HostHealth: Sendable {
    public var host: LabHost
    public var namespaceExists: Bool
    public var sshdRunning: Bool
    public var healthy: Bool { namespaceExists && sshdRunning }
  }

  public func health(_ state: LabState) -> [HostHealth] {
    state.hosts.map { host in
      HostHealth(
        host: host, namespaceExists: FileManager.default.fileExists(atPath: "/run/netns/\(host.namespace)"),
        sshdRunning: host.sshdPID.map { isOurSSHD($0, config: "\(host.directory)/sshd_config") } ?? false)
    }
  }

  // MARK: - helpers

  /// `base`.N.0/24 (base 10.213 for the management bridge, 10.214 for the data bridge) with N
  /// from the lab name, skipping subnets already in use here.
  func chooseSubnet(in base: String, for what: String) throws(LabError) -> String {
    let used =
      ((try? ChildProcess.run(["ip", "-4", "-o", "addr", "show"]).stdoutText) ?? "")
      + ((try? ChildProcess.run(["ip", "-4", "route", "show"]).stdoutText) ?? "")
    var hash: UInt32 = 2_166_136_261
    for byte in name.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
    for attempt in 0..<250 {
      let third = 1 + Int((hash &+ UInt32(attempt)) % 250)
      let prefix = "\(base).\(third)"
      if !used.contains("\(prefix).") { return prefix }
    }
    throw LabError("no free \(base).x.0/24 subnet for the \(what); take other labs down first")
  }

  func ipBatch(_ lines: [String], namespace: String? = nil) throws(LabError) {
    var arguments = ["ip"]
    if let namespace { arguments += ["-n", namespace] }
    arguments += ["-batch", "-"]
    let output: ProcessOutput
    do {
      output = try ChildProcess.run(
        arguments, stdin: Array((lines.joined(separator: "\n") + "\n").utf8), timeout: 60)
    } catch {
      throw LabError(error.description)
    }
    guard output.succeeded else {
      throw LabError(
        "ip \(namespace.map { "-n \($0) " } ?? "")failed: \(output.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))"
      )
    }
  }

  func run(_ arguments: [String]) throws(LabError) {
    let output: ProcessOutput
    do {
      output = try ChildProcess.run(arguments, timeout: 60)
    } catch {
      throw LabError(error.description)
    }
    guard output.succeeded else {
      throw LabError(
        "\(arguments.joined(separator: " ")) failed (\(output.statusText)): \(output.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))"
      )
    }
  }

  func save(_ state: LabState) throws(LabError) {
    do {
      try state.save(to: statePath)
    } catch {
      throw LabError("cannot record the lab state in \(statePath): \(error)")
    }
  }

  func makeDirectory(_ path: String) throws(LabError) {
    do {
      try FileManager.default.createDirectory(
        atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    } catch {
      throw LabError("cannot create \(path): \(error.localizedDescription)")
    }
  }

  func write(_ text: String, to path: String) throws(LabError) {
    do {
      try text.write(toFile: path, atomically: true, encoding: .utf8)
    } catch {
      throw LabError("cannot write \(path): \(error.localizedDescription)")
    }
  }

  func read(_ path: String) throws(LabError) -> String {
    do {
      return try String(contentsOfFile: path, encoding: .utf8)
    } catch {
      throw LabError("cannot read \(path): \(error.localizedDescription)")
    }
  }
}

/// Checks that a TCP port accepts connections (from the current namespace).
enum TCPProbe {
  static func canConnect(to address: String, port: UInt16, timeout: Double) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
      if attempt(address, port) { return true }
      usleep(20_000)
    }
    return false
  }

  static func attempt(_ address: String, _ port: UInt16) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var sin = sockaddr_in()
    sin.sin_family = sa_family_t(AF_INET)
    sin.sin_port = port.bigEndian
    guard inet_pton(AF_INET, address, &sin.sin_addr) == 1 else { return false }
    var timeout = timeval(tv_sec: 0, tv_usec: 300_000)
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    return withUnsafePointer(to: &sin) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
      }
    }
  }
}
