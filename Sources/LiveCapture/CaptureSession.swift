import AgentProtocol
import CaptureFiles
import Checksum
import Support
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Counters the capture thread publishes for `status`.
public struct CaptureCounters: Sendable {
  /// The protocol's per-interface counters: what `status` reports is what is counted.
  public typealias Interface = InterfaceCounters
  public var interfaces: [Interface]
  public var packets: Int64 = 0
  public var bytes: Int64 = 0
  public var files: [String] = []
  public var startedNanoseconds: Int64?
  public var stoppedNanoseconds: Int64?
  public var stopReason: StopReason?
  public var error: AgentProtocolError?
}

/// One libpcap handle and what its packets are: which interface (IDB) they belong to and how
/// their direction is known.
struct CaptureSource {
  enum Direction {
    /// Every packet of the handle has this direction: the handle selects it by the kernel's
    /// packet type (`PACKET_OUTGOING` or not); `.unknown` where libpcap cannot.
    case fixed(PacketDirection)
    /// SMC dump records: by the record's addresses (`LocalAddresses.directionOfDumpRecord`).
    case byRecordAddresses
    /// Cooked captures (the `any` device): the packet type in the frame's own SLL/SLL2
    /// header, which is the kernel's.
    case fromCookedHeader

    /// The direction of one captured frame (`.byRecordAddresses` needs the host's addresses:
    /// `LocalAddresses.directionOfDumpRecord`).
    @inline(__always)
    func of(_ frame: UnsafeRawBufferPointer, linkType: UInt32) -> PacketDirection {
      switch self {
      case .fixed(let direction): return direction
      case .byRecordAddresses: return .unknown
      case .fromCookedHeader:
        // PACKET_OUTGOING is 4: SLL's first 16-bit field, SLL2's byte at offset 10.
        let type: UInt8? =
          linkType == 113 ? (frame.count >= 2 ? frame[1] : nil) : (frame.count >= 11 ? frame[10] : nil)
        guard let type else { return .unknown }
        return type == 4 ? .outbound : .inbound
      }
    }
  }
  let handle: PcapHandle
  let interface: Int
  let direction: Direction
}

/// One capture: libpcap handles for every interface of a plan, written into one pcapng
/// (one IDB per interface, ISB statistics at the end) by a dedicated thread, in timestamp
/// order across interfaces (`ReorderWindow`), each packet with its direction (`epb_flags`).
///
/// A NIC gets two handles, one for `inbound` and one for `outbound` packets
/// (`PcapHandle.setDirectionalFilter`), so that the kernel's packet type decides the
/// direction and each packet is copied out of the kernel once; the dump device gets one.
public final class CaptureSession: @unchecked Sendable {
  /// The protocol's session state (`status.state`).
  public typealias State = CaptureState

  public let plan: CapturePlan
  public let folder: String
  public let dumpDevice: SMCDumpDevice?
  /// Interfaces actually captured (the plan's, plus the dump device when there is one).
  public let interfaceNames: [String]
  /// Why the dump device is or is not captured (for the reply).
  public let smcDumpDetail: String
  /// The index of the SMC dump device in `interfaceNames`, if it is captured.
  let dumpInterface: Int?
  let sources: [CaptureSource]
  var handles: [PcapHandle] { sources.map(\.handle) }
  let counters: Mutex<CaptureCounters>
  let stateBox = Mutex<State>(.prepared)
  private var thread: pthread_t?
  private var stopPipe: [Int32] = [-1, -1]

  public var state: State { stateBox.withLock { $0 } }
  public func snapshot() -> CaptureCounters { counters.withLock { $0 } }

  /// Opens every handle and installs the filter; nothing is written yet. A filter that does
  /// not compile or an interface that does not exist is an error here, before `start`.
  public init(plan: CapturePlan, root: String) throws(AgentProtocolError) {
    self.plan = plan
    folder = "\(root)/sessions/\(plan.session)"
    // `smc_mode` smc, smcr, smcd: the dump device alone, as smcdump-ex's `-m smc`.
    var names = plan.smcMode.capturesNICs ? plan.interfaces : []
    var dump: SMCDumpDevice?
    var detail: String
    let probe = SMCDumpProbe.probe()
    switch plan.smcDump {
    case .off:
      detail = "SMC dump off by request"
    case .auto, .required:
      if probe.supported {
        let created = try SMCDumpDevice.create(probe: probe, root: root)
        dump = created
        names.append(created.name)
        detail = "capturing SMC dump device \(created.name)"
      } else if plan.smcDump == .required {
        throw AgentProtocolError(.smcDumpUnsupported, probe.detail + "; smc_dump is 'required'")
      } else if !plan.smcMode.capturesNICs {
        throw AgentProtocolError(
          .smcDumpUnsupported,
          probe.detail + "; smc_mode '\(plan.smcMode.rawValue)' captures only the SMC dump device")
      } else {
        detail = probe.detail + "; capturing the NIC only"
      }
    case .device(let device):
      if !names.contains(device) { names.append(device) }
      detail = "capturing existing device \(device) as the SMC dump device"
    }
    if !plan.smcMode.capturesNICs {
      detail += "; NICs not captured (smc_mode \(plan.smcMode.rawValue))"
    }
    var opened: [CaptureSource] = []
    do throws(PcapError) {
      for (index, name) in names.enumerated() {
        let filter = plan.filter(for: name, dumpDevice: dump?.name)
        let isDump = name == dump?.name || plan.isDumpDevice(name)
        let handle = try PcapHandle(interface: name, snaplen: plan.snaplen, bufferBytes: plan.bufferBytes)
        if isDump {
          if !filter.isEmpty { try handle.setFilter(filter) }
          opened.append(CaptureSource(handle: handle, interface: index, direction: .byRecordAddresses))
          continue
        }
        if [113, 276].contains(handle.linkType) {
          if !filter.isEmpty { try handle.setFilter(filter) }
          opened.append(CaptureSource(handle: handle, interface: index, direction: .fromCookedHeader))
          continue
        }
        opened.append(CaptureSource(handle: handle, interface: index, direction: .fixed(.inbound)))
        do {
          try handle.setDirectionalFilter(.inbound, filter)
        } catch  where error.code == .direction {
          // libpcap cannot tell directions on this handle: one handle, packets without one.
          if !filter.isEmpty { try handle.setFilter(filter) }
          opened[opened.count - 1] = CaptureSource(
            handle: handle, interface: index, direction: .fixed(.unknown))
          continue
        }
        let outgoing = try PcapHandle(interface: name, snaplen: plan.snaplen, bufferBytes: plan.bufferBytes)
        opened.append(CaptureSource(handle: outgoing, interface: index, direction: .fixed(.outbound)))
        try outgoing.setDirectionalFilter(.outbound, filter)
      }
    } catch {
      for source in opened { source.handle.close() }
      dump?.remove()
      switch error.code {
      case .filter: throw AgentProtocolError(.badFilter, error.description)
      case .permission: throw AgentProtocolError(.privileges, error.description)
      default: throw AgentProtocolError(.capture, error.description)
      }
    }
    sources = opened
    dumpDevice = dump
    dumpInterface = names.firstIndex { $0 == dump?.name || plan.isDumpDevice($0) }
    smcDumpDetail = detail
    interfaceNames = names
    counters = Mutex(CaptureCounters(interfaces: names.map { CaptureCounters.Interface(name: $0) }))
    guard CaptureSession.makeFolder(folder) else {
      for source in opened { source.handle.close() }
      dump?.remove()
      throw AgentProtocolError(
        .io, "cannot create the session folder \(folder): \(Errno.current)")
    }
  }

  static func makeFolder(_ path: String) -> Bool {
    var partial = ""
    for component in path.split(separator: "/") {
      partial += "/" + component
      if mkdir(partial, 0o700) != 0 && errno != EEXIST { return false }
    }
    return true
  }

  deinit { releaseDevices() }

  func releaseDevices() {
    for handle in handles { handle.close() }
    dumpDevice?.remove()
  }

  // MARK: - start / stop

  /// Starts the capture thread; returns the start time (ns since the epoch).
  public func start() throws(AgentProtocolError) -> Int64 {
    guard state == .prepared else {
      throw AgentProtocolError(.outOfOrder, "start needs a prepared session (this one is \(state.rawValue))")
    }
    guard pipe(&stopPipe) == 0 else {
      throw AgentProtocolError(.io, "pipe: \(Errno.current)")
    }
    let writer: PcapngWriter
    do {
      writer = try openFile(index: 1)
    } catch {
      throw AgentProtocolError(writing: error)
    }
    let now = SystemClock.realtimeNanoseconds()
    counters.withLock {
      $0.startedNanoseconds = now
      $0.files = [writer.path]
    }
    stateBox.withLock { $0 = .capturing }
    let created: pthread_t
    do {
      created = try CaptureThread.start { [self] in self.run(writer: writer, started: now) }
    } catch {
      stateBox.withLock { $0 = .stopped }
      throw AgentProtocolError(.capture, "cannot start the capture thread: \(error)")
    }
    thread = created
    return now
  }

  /// Asks the capture to stop and waits until the file is complete.
  public func stop(reason: StopReason = .requested) {
    if state == .capturing {
      counters.withLock { if $0.stopReason == nil { $0.stopReason = reason } }
      var byte: UInt8 = 1
      _ = write(stopPipe[1], &byte, 1)
    }
    if let thread {
      pthread_join(thread, nil)
      self.thread = nil
    }
  }

  /// Files with size and SHA-256; the session must be stopped.
  public func finalize() throws(AgentProtocolError) -> [CaptureFileDigest] {
    switch state {
    case .stopped, .finalized: break
    default:
      throw AgentProtocolError(
        .outOfOrder, "finalize needs a stopped session (this one is \(state.rawValue)); send stop first")
    }
    var out: [CaptureFileDigest] = []
    for path in snapshot().files { out.append(try CaptureFileDigest.of(path)) }
    stateBox.withLock { $0 = .finalized }
    return out
  }

  // MARK: - the capture thread

  func openFile(index: Int) throws(CaptureFileError) -> PcapngWriter {
    let name =
      "capture-" + String(repeating: "0", count: max(0, 4 - String(index).count)) + String(index) + ".pcapng"
    let writer = try PcapngWriter(
      path: "\(folder)/\(name)", application: "smcpair-agent \(AgentInfo.version)",
      os: AgentInfo.osDescription,
      hardware: AgentInfo.machine, bufferSize: 64 << 10, mode: 0o600)
    for (index, name) in interfaceNames.enumerated() {
      // `init` opens at least one handle per interface; all of an interface's share its link type.
      guard let handle = sources.first(where: { $0.interface == index })?.handle else {
        throw CaptureFileError(.io, "no capture handle for interface \(name)", path: writer.path)
      }
      try writer.addInterface(
        InterfaceDescription(
          name: name,
          description: name == dumpDevice?.name || name == plan.smcDump.deviceName
            ? "SMC dump device" : "NIC",
          linkType: LinkType(rawValue: handle.linkType), snapLength: UInt32(plan.snaplen),
          filter: {
            let filter = plan.filter(for: name, dumpDevice: dumpDevice?.name)
            return filter.isEmpty ? nil : filter
          }(), os: AgentInfo.osDescription))
    }
    // The file is a valid, empty capture from the first moment (a SIGKILL right after start
    // still leaves something readable).
    try writer.flush()
    return writer
  }

  /// The capture thread: captures until stopped (`CaptureLoop`), then records how it ended
  /// and releases the handles, the dump device and the stop pipe.
  func run(writer initial: PcapngWriter, started: Int64) {
    let (failure, reason) = CaptureLoop(
      session: self, writer: initial, started: started, stopRequests: stopPipe[0]
    ).run()
    let end = SystemClock.realtimeNanoseconds()
    counters.withLock {
      $0.stoppedNanoseconds = end
      if $0.stopReason == nil { $0.stopReason = failure == nil ? (reason ?? .stopped) : .error }
      if let failure { $0.error = failure }
    }
    for source in sources { source.handle.close() }
    dumpDevice?.remove()
    close(stopPipe[0])
    close(stopPipe[1])
    stateBox.withLock { $0 = .stopped }
  }

  /// libpcap statistics per interface (the sum of its handles), nil where none answered.
  func interfaceStatistics() -> [(received: UInt64, dropped: UInt64, interfaceDropped: UInt64)?] {
    var out: [(received: UInt64, dropped: UInt64, interfaceDropped: UInt64)?] = Array(
      repeating: nil, count: interfaceNames.count)
    for source in sources {
      guard let s = source.handle.statistics() else { continue }
      let sum = out[source.interface] ?? (0, 0, 0)
      // The two handles of a NIC see the same interface drops; count those once.
      out[source.interface] = (
        sum.received + s.received, sum.dropped + s.dropped, max(sum.interfaceDropped, s.interfaceDropped)
      )
    }
    return out
  }

  func publish(
    packets: Int64, bytes: Int64, perInterface: [UInt64], bytesPerInterface: [UInt64], outOfOrder: [UInt64],
    dumpRecords: DumpRecordCounts?
  ) {
    let stats = interfaceStatistics()
    counters.withLock { c in
      c.packets = packets
      c.bytes = bytes
      if let dumpInterface, let dumpRecords { c.interfaces[dumpInterface].dumpRecords = dumpRecords }
      for index in c.interfaces.indices {
        c.interfaces[index].written = perInterface[index]
        c.interfaces[index].bytes = bytesPerInterface[index]
        c.interfaces[index].outOfOrder = outOfOrder[index]
        if let s = stats[index] {
          c.interfaces[index].received = s.received
          c.interfaces[index].dropped = s.dropped
          c.interfaces[index].interfaceDropped = s.interfaceDropped
        }
      }
    }
  }

  /// ISB per interface (with the count of packets written out of time order as a comment),
  /// then close.
  func finish(
    _ writer: PcapngWriter, started: Int64, written: [UInt64], outOfOrder: [UInt64]
  ) throws(CaptureFileError) {
    let now = SystemClock.realtimeNanoseconds()
    let stats = interfaceStatistics()
    for index in interfaceNames.indices {
      let s = stats[index]
      try writer.writeStatistics(
        interface: index, timestampNanoseconds: now, startNanoseconds: started, endNanoseconds: now,
        received: s?.received, dropped: s?.interfaceDropped, osDropped: s?.dropped,
        delivered: written[index],
        comment: "smcpair-agent: \(outOfOrder[index]) packets out of time order in this file")
    }
    try writer.close()
  }
}

extension CapturePlan {
  /// The interface is the SMC dump device by name (an existing device given as `smc_dump`).
  func isDumpDevice(_ interface: String) -> Bool {
    interface == smcDump.deviceName
  }

  /// The filter installed on `interface`: `dumpFilter` on the SMC dump device (when set),
  /// `filter` everywhere else.
  func filter(for interface: String, dumpDevice: String?) -> String {
    let isDump = interface == dumpDevice || isDumpDevice(interface)
    return isDump ? (dumpFilter ?? filter) : filter
  }
}
