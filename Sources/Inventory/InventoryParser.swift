import Foundation
import Support
import Yams

/// Reads the smcpair inventory format (YAML with `defaults`, `hosts`, `groups`, `pairs`).
/// See docs/inventory.md.
public enum InventoryParser {
  static let topKeys = ["defaults", "hosts", "groups", "pairs"]
  static let hostKeys = [
    "address", "port", "user", "identity", "known_hosts", "jump", "become", "nic", "nics", "smc_dump",
    "agent", "agent_root", "data_address", "engine", "deploy_agent", "smcdump_ex",
  ]
  static let pairKeys = ["client", "server", "filter", "interfaces"]

  /// The bytes of a regular file, or why not (`errno`'s words: "No such file or directory").
  static func readFile(_ absolute: String, shownAs path: String, what: String) throws(InventoryError) -> Data
  {
    var info = stat()
    guard stat(absolute, &info) == 0 else { throw .unreadable(what, path: path, errno: errno) }
    guard info.st_mode & S_IFMT == S_IFREG else {
      throw .unreadable(what, path: path, errno: info.st_mode & S_IFMT == S_IFDIR ? EISDIR : EINVAL)
    }
    guard access(absolute, R_OK) == 0 else { throw .unreadable(what, path: path, errno: errno) }
    guard let data = FileManager.default.contents(atPath: absolute) else {
      throw .unreadable(what, path: path, errno: EIO)
    }
    return data
  }

  /// Parses the file at `path`. Relative paths inside it are relative to its folder.
  public static func load(path: String) throws(InventoryError) -> Inventory {
    let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    let data = try readFile(absolute, shownAs: path, what: "inventory")
    guard let text = String(data: data, encoding: .utf8) else {
      throw InventoryError(SourceLocation(file: path, line: 1, column: 1), "the inventory is not UTF-8 text")
    }
    return try parse(text, file: path, baseDirectory: parentFolder(of: absolute))
  }

  /// Parses inventory text; `file` labels locations in errors. Ansible inventories (INI or
  /// YAML) are recognised and read too (without pairs).
  public static func parse(_ text: String, file: String, baseDirectory: String) throws(InventoryError)
    -> Inventory
  {
    if AnsibleInventory.looksLikeINI(text) {
      return try AnsibleInventory.parseINI(text, file: file, baseDirectory: baseDirectory)
    }
    try checkAliases(text, file: file)
    let root: Node
    do {
      guard let node = try Yams.compose(yaml: text) else {
        throw InventoryError(
          SourceLocation(file: file, line: 1, column: 1),
          "the inventory is empty; it needs at least a 'hosts:' mapping (see docs/inventory.md)")
      }
      root = node
    } catch let error as InventoryError {
      throw error
    } catch {
      throw yamlError(error, file: file, text: text)
    }
    if isAnsibleYAML(root) {
      return try AnsibleInventory.parseYAML(root, file: file, baseDirectory: baseDirectory)
    }
    var parser = Walker(file: file, base: baseDirectory)
    return try parser.inventory(root)
  }

  /// YAML aliases let a small text stand for an exponentially large tree, and Yams hashes
  /// such trees while composing (a fuzzed 2 KB inventory took 38 s). Inventories have no need
  /// for many: more than `maximumAliases` are refused before parsing.
  static func checkAliases(_ text: String, file: String) throws(InventoryError) {
    var count = 0
    var previous: Character = "\n"
    var line = 1
    var inQuote: Character?
    for character in text {
      if character == "\n" {
        line += 1
        inQuote = nil
      } else if let open = inQuote {
        if character == open { inQuote = nil }
      } else if character == "\"" || character == "'" {
        inQuote = character
      } else if character == "*" && " \t\n,[{:-".contains(previous) {
        count += 1
        guard count <= maximumAliases else {
          throw InventoryError(
            SourceLocation(file: file, line: line, column: 1),
            "more than \(maximumAliases) YAML aliases (*name); write the values out instead")
        }
      }
      previous = character
    }
  }

  static let maximumAliases = 16

  /// An Ansible YAML inventory: no smcpair top-level key, and groups holding `hosts`,
  /// `children` or `vars`.
  static func isAnsibleYAML(_ root: Node) -> Bool {
    guard case .mapping(let mapping) = root else { return false }
    var sawGroup = false
    for (key, value) in mapping {
      guard case .scalar(let name) = key else { return false }
      if topKeys.contains(name.string) { return false }
      if case .mapping(let group) = value,
        group.keys.contains(where: { ["hosts", "children", "vars"].contains($0.string ?? "") })
      {
        sawGroup = true
      }
    }
    return sawGroup
  }

  /// A pairs overlay for an inventory without pairs (Ansible): a YAML file with a `pairs:`
  /// mapping in the smcpair format, naming hosts of `inventory`.
  public static func loadPairs(path: String, for inventory: Inventory) throws(InventoryError)
    -> [InventoryPair]
  {
    let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    let data = try readFile(absolute, shownAs: path, what: "pairs file")
    let text = String(decoding: data, as: UTF8.self)
    try checkAliases(text, file: path)
    let root: Node
    do {
      guard let node = try Yams.compose(yaml: text) else {
        throw InventoryError(
          SourceLocation(file: path, line: 1, column: 1), "the pairs file is empty; it needs 'pairs:'")
      }
      root = node
    } catch let error as InventoryError {
      throw error
    } catch {
      throw yamlError(error, file: path, text: text)
    }
    let walker = Walker(file: path, base: parentFolder(of: absolute))
    var pairs: Node?
    for (key, _, value) in try walker.entries(root, what: "the pairs file", allowed: ["pairs"])
    where key == "pairs" {
      pairs = value
    }
    guard let pairs else { throw walker.fail(root, "the pairs file needs a 'pairs:' mapping") }
    return try walker.pairs(pairs, hosts: Set(inventory.hosts.map(\.name)))
  }

  static func yamlError(_ error: Error, file: String, text: String) -> InventoryError {
    if let yaml = error as? YamlError {
      switch yaml {
      case .duplicatedKeysInMapping(let duplicates, let context):
        // Yams reports the mapping; point at the second occurrence of the key instead.
        let key = duplicates.sorted().first ?? ""
        var location = SourceLocation(file: file, line: context.mark.line, column: context.mark.column)
        var firstIndent: Int?
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where index + 1 >= context.mark.line {
          let indent = line.prefix { $0 == " " }.count
          guard line.dropFirst(indent).hasPrefix("\(key):") else { continue }
          if let firstIndent {
            if indent == firstIndent {
              location = SourceLocation(file: file, line: index + 1, column: indent + 1)
              break
            }
          } else {
            firstIndent = indent
          }
        }
        return InventoryError(location, "'\(key)' appears twice in the same mapping; keep one")
      case .scanner(let context, let problem, let mark, _):
        return InventoryError(
          SourceLocation(file: file, line: mark.line, column: mark.column),
          "YAML syntax error: \(problem)\(context.map { " \($0.text)" } ?? "")")
      case .parser(let context, let problem, let mark, _):
        return InventoryError(
          SourceLocation(file: file, line: mark.line, column: mark.column),
          "YAML syntax error: \(problem)\(context.map { " \($0.text)" } ?? "")")
      case .composer(let context, let problem, let mark, _):
        return InventoryError(
          SourceLocation(file: file, line: mark.line, column: mark.column),
          "YAML error: \(problem)\(context.map { " \($0.text)" } ?? "")")
      default:
        break
      }
    }
    return InventoryError(SourceLocation(file: file, line: 1, column: 1), "YAML error: \(error)")
  }
}

/// Walks the YAML node tree, checking every key and value.
struct Walker {
  let file: String
  let base: String

  func location(_ node: Node) -> SourceLocation {
    SourceLocation(file: file, line: node.mark?.line ?? 0, column: node.mark?.column ?? 0)
  }

  func fail(_ node: Node, _ message: String) -> InventoryError {
    InventoryError(location(node), message)
  }

  /// The entries of a mapping as (key text, key node, value node), rejecting duplicates and
  /// keys not in `allowed`.
  func entries(_ node: Node, what: String, allowed: [String]?) throws(InventoryError) -> [(
    String, Node, Node
  )] {
    guard case .mapping(let mapping) = node else {
      throw fail(node, "\(what) must be a mapping (key: value lines)")
    }
    var seen: [String: Node] = [:]
    var out: [(String, Node, Node)] = []
    for (key, value) in mapping {
      guard case .scalar(let scalar) = key else { throw fail(key, "keys in \(what) must be plain names") }
      let name = scalar.string
      if let first = seen[name] {
        throw fail(
          key, "'\(name)' appears twice in \(what) (first at line \(first.mark?.line ?? 0)); keep one")
      }
      if let allowed, !allowed.contains(name) {
        throw fail(
          key,
          "unknown key '\(name)' in \(what)\(Self.suggestion(name, allowed)); allowed: \(allowed.joined(separator: ", "))"
        )
      }
      seen[name] = key
      out.append((name, key, value))
    }
    return out
  }

  /// `ssh://[user@]host[:port]` with a port OpenSSH accepts (digits, 1-65535), `[v6]` hosts.
  static func isJumpURL(_ text: String) -> Bool {
    var rest = Substring(text.dropFirst("ssh://".count))
    guard !rest.contains("/") else { return false }
    if let at = rest.lastIndex(of: "@") {
      guard at != rest.startIndex else { return false }
      rest = rest[rest.index(after: at)...]
    }
    var portText: Substring?
    if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
      guard rest.index(after: rest.startIndex) < close else { return false }
      let after = rest[rest.index(after: close)...]
      if !after.isEmpty {
        guard after.hasPrefix(":") else { return false }
        portText = after.dropFirst()
      }
    } else if let colon = rest.lastIndex(of: ":") {
      guard colon != rest.startIndex, !rest[..<colon].contains(":") else { return false }
      portText = rest[rest.index(after: colon)...]
    } else if rest.isEmpty {
      return false
    }
    if let portText {
      guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
        let port = Int(portText), (1...65535).contains(port)
      else { return false }
    }
    return true
  }

  static func suggestion(_ word: String, _ candidates: [String]) -> String {
    let best = candidates.min { distance(word, $0) < distance(word, $1) }
    if let best, distance(word, best) <= 2 { return " (did you mean '\(best)'?)" }
    return ""
  }

  static func distance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    var row = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
      var previous = row[0]
      row[0] = i
      for j in 1...max(b.count, 1) where !b.isEmpty {
        let current = row[j]
        row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
        previous = current
      }
    }
    return row[b.count]
  }

  func string(_ node: Node, _ what: String) throws(InventoryError) -> String {
    guard case .scalar(let scalar) = node, !scalar.string.isEmpty else {
      throw fail(node, "\(what) must be a non-empty text value")
    }
    return scalar.string
  }

  func int(_ node: Node, _ what: String, range: ClosedRange<Int>) throws(InventoryError) -> Int {
    guard case .scalar(let scalar) = node, let value = Int(scalar.string), range.contains(value) else {
      throw fail(node, "\(what) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
    }
    return value
  }

  func list(_ node: Node, _ what: String) throws(InventoryError) -> [(String, Node)] {
    switch node {
    case .scalar(let scalar) where !scalar.string.isEmpty:
      return [(scalar.string, node)]
    case .sequence(let sequence):
      var out: [(String, Node)] = []
      for item in sequence { out.append((try string(item, "each entry of \(what)"), item)) }
      return out
    default:
      throw fail(node, "\(what) must be a name or a list of names, e.g. [eth0, eth1]")
    }
  }

  func path(_ text: String) -> String {
    if text.hasPrefix("/") { return text }
    if text.hasPrefix("~/"), let home = ProcessInfo.processInfo.environment["HOME"] {
      return home + text.dropFirst(1)
    }
    return (base as NSString).appendingPathComponent(text)
  }

  struct Settings {
    var port = 22
    var user = "root"
    var identity: String?
    var knownHosts: String?
    var jump: String?
    var become = Become.none
    var nics = ["eth0"]
    var smcDump = SMCDumpSetting.auto
    var agent = Inventory.defaultAgentPath
    var agentRoot: String?
    var address: String?
    var dataAddress: String?
    var engine = CaptureEngineSetting.auto
    var deployAgent = true
    var smcdumpEx: String?
  }

  func settings(_ node: Node, into settings: inout Settings, what: String, allowAddress: Bool)
    throws(InventoryError)
  {
    for (key, keyNode, value) in try entries(
      node, what: what,
      allowed: allowAddress
        ? InventoryParser.hostKeys
        : InventoryParser.hostKeys.filter { $0 != "address" && $0 != "data_address" })
    {
      _ = keyNode
      switch key {
      case "address": settings.address = try string(value, "address")
      case "port": settings.port = try int(value, "port", range: 1...65535)
      case "user": settings.user = try string(value, "user")
      case "identity": settings.identity = path(try string(value, "identity"))
      case "known_hosts": settings.knownHosts = path(try string(value, "known_hosts"))
      case "jump": settings.jump = try string(value, "jump")
      case "become":
        let text = try string(value, "become")
        guard let become = Become(rawValue: text) else {
          throw fail(value, "become must be 'sudo' or 'none', not '\(text)'")
        }
        settings.become = become
      case "nic", "nics":
        settings.nics = try list(value, key).map(\.0)
      case "smc_dump":
        settings.smcDump = SMCDumpSetting(try string(value, "smc_dump"))
      case "agent":
        let path = try string(value, "agent")
        if let problem = Inventory.agentPathProblem(path) { throw fail(value, problem) }
        settings.agent = path
      case "agent_root": settings.agentRoot = try string(value, "agent_root")
      case "data_address": settings.dataAddress = try string(value, "data_address")
      case "engine":
        let text = try string(value, "engine")
        guard let engine = CaptureEngineSetting(rawValue: text) else {
          throw fail(value, "engine must be one of \(CaptureEngineSetting.choices), not '\(text)'")
        }
        settings.engine = engine
      case "deploy_agent":
        let text = try string(value, "deploy_agent")
        guard let allowed = Inventory.boolean(text) else {
          throw fail(value, "deploy_agent must be true or false, not '\(text)'")
        }
        settings.deployAgent = allowed
      case "smcdump_ex":
        let path = try string(value, "smcdump_ex")
        if let problem = Inventory.toolPathProblem(path, key: "smcdump_ex") { throw fail(value, problem) }
        settings.smcdumpEx = path
      default: break
      }
    }
  }

  static func namePattern(_ name: String) -> Bool {
    !name.isEmpty && name.count <= 64 && !name.allSatisfy({ $0 == "." })
      && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }
  }

  /// A `pairs:` mapping whose hosts must be in `names`.
  func pairs(_ pairNodes: Node, hosts names: Set<String>) throws(InventoryError) -> [InventoryPair] {
    var pairs: [InventoryPair] = []
    for (name, keyNode, value) in try entries(pairNodes, what: "pairs", allowed: nil) {
      guard Self.namePattern(name) else {
        throw fail(
          keyNode,
          "pair name '\(name)' may use letters, digits, '-', '_' and '.' only (it names session folders)")
      }
      var client: String?
      var server: String?
      var filter: String?
      var interfaces: [String]?
      for (key, _, field) in try entries(value, what: "pair '\(name)'", allowed: InventoryParser.pairKeys) {
        switch key {
        case "client", "server":
          let host = try string(field, key)
          guard names.contains(host) else {
            throw fail(
              field, "pair '\(name)': \(key) '\(host)' is not a host\(Self.suggestion(host, Array(names)))")
          }
          if key == "client" { client = host } else { server = host }
        case "filter": filter = try string(field, "filter")
        case "interfaces": interfaces = try list(field, "interfaces").map(\.0)
        default: break
        }
      }
      guard let client, let server else {
        throw fail(keyNode, "pair '\(name)' needs both 'client:' and 'server:' host names")
      }
      guard client != server else {
        throw fail(
          keyNode, "pair '\(name)' uses '\(client)' as both client and server; name two different hosts")
      }
      pairs.append(
        InventoryPair(
          name: name, client: client, server: server, filter: filter, interfaces: interfaces,
          location: location(keyNode)))
    }
    return pairs
  }

  mutating func inventory(_ root: Node) throws(InventoryError) -> Inventory {
    var defaults = Settings()
    var hostNodes: Node?
    var groupNodes: Node?
    var pairNodes: Node?
    for (key, _, value) in try entries(root, what: "the inventory", allowed: InventoryParser.topKeys) {
      switch key {
      case "defaults": try settings(value, into: &defaults, what: "defaults", allowAddress: false)
      case "hosts": hostNodes = value
      case "groups": groupNodes = value
      case "pairs": pairNodes = value
      default: break
      }
    }
    guard let hostNodes else {
      throw fail(
        root, "the inventory has no 'hosts:' mapping; add one host per entry (see docs/inventory.md)")
    }
    var hosts: [InventoryHost] = []
    for (name, keyNode, value) in try entries(hostNodes, what: "hosts", allowed: nil) {
      guard Self.namePattern(name) else {
        throw fail(keyNode, "host name '\(name)' may use letters, digits, '-', '_' and '.' only")
      }
      var settings = defaults
      settings.address = nil
      if case .scalar(let scalar) = value, scalar.string.isEmpty {
        // "h1:" with nothing after it: the name is the address.
      } else {
        try self.settings(value, into: &settings, what: "host '\(name)'", allowAddress: true)
      }
      hosts.append(
        InventoryHost(
          name: name, address: settings.address ?? name, port: settings.port, user: settings.user,
          identity: settings.identity, knownHosts: settings.knownHosts, jump: settings.jump,
          become: settings.become,
          nics: settings.nics, dataAddress: settings.dataAddress, smcDump: settings.smcDump,
          agentPath: settings.agent,
          agentRoot: settings.agentRoot, engine: settings.engine, deployAgent: settings.deployAgent,
          smcdumpExPath: settings.smcdumpEx, location: location(keyNode)))
    }
    if hosts.isEmpty {
      throw fail(hostNodes, "'hosts:' is empty; name at least two hosts (a client and a server)")
    }
    let names = Set(hosts.map(\.name))
    for host in hosts {
      if let jump = host.jump, jump.hasPrefix("ssh://"), !Self.isJumpURL(jump) {
        throw InventoryError(
          host.location,
          "host '\(host.name)' jumps through '\(jump)', which is not a valid ssh://[user@]host[:port] target (the port must be 1-65535, no path); refusing rather than connecting without the jump host"
        )
      }
      if let jump = host.jump, !jump.hasPrefix("ssh://"), !names.contains(jump) {
        throw InventoryError(
          host.location,
          "host '\(host.name)' jumps through '\(jump)', which is not a host in this inventory\(Self.suggestion(jump, Array(names))); name an inventory host or an ssh://user@host:port target"
        )
      }
    }
    var groups: [String: [String]] = [:]
    if let groupNodes {
      for (name, _, value) in try entries(groupNodes, what: "groups", allowed: nil) {
        var members: [String] = []
        for (member, node) in try list(value, "group '\(name)'") {
          guard names.contains(member) else {
            throw fail(
              node,
              "group '\(name)' names '\(member)', which is not a host\(Self.suggestion(member, Array(names)))"
            )
          }
          members.append(member)
        }
        groups[name] = members
      }
    }
    let pairs = try pairNodes.map { node throws(InventoryError) in try self.pairs(node, hosts: names) } ?? []
    return Inventory(path: file, hosts: hosts, groups: groups, pairs: pairs)
  }
}
