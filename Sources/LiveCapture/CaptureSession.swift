import AgentProtocol
import CaptureFiles
import Checksum
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
    var names = plan.interfaces
    var dump: SMCDumpDevice?
    var detail: String
    let probe = SMCDumpProbe.probe()
    switch plan.smcDump {
    case .off:
      detail = "SMC dump off by request"
    case .auto, .required:
      if probe.supported {
        dump = try SMCDumpDevice.create(probe: probe, root: root)
        names.append(dump!.name)
        detail = "capturing SMC dump device \(dump!.name)"
      } else if plan.smcDump == .required {
        throw AgentProtocolError(.smcDumpUnsupported, probe.detail + "; smc_dump is 'required'")
      } else {
        detail = probe.detail + "; capturing the NIC only"
      }
    case .device(let device):
      if !names.contains(device) { names.append(device) }
      detail = "capturing existing device \(device) as the SMC dump device"
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
    smcDumpDetail = detail
    interfaceNames = names
    counters = Mutex(CaptureCounters(interfaces: names.map { CaptureCounters.Interface(name: $0) }))
    guard CaptureSession.makeFolder(folder) else {
      for source in opened { source.handle.close() }
      dump?.remove()
      throw AgentProtocolError(
        .io, "cannot create the session folder \(folder): \(String(cString: strerror(errno)))")
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
      throw AgentProtocolError(.io, "pipe: \(String(cString: strerror(errno)))")
    }
    let writer: PcapngWriter
    do {
      writer = try openFile(index: 1)
    } catch {
      throw AgentProtocolError(error.code == .diskFull ? .diskFull : .io, error.description)
    }
    let now = Clock.realtimeNanoseconds()
    counters.withLock {
      $0.startedNanoseconds = now
      $0.files = [writer.path]
    }
    stateBox.withLock { $0 = .capturing }
    let box = Unmanaged.passRetained(ThreadBody { [self] in self.run(writer: writer, started: now) })
    var created = pthread_t()
    let result = pthread_create(
      &created, nil,
      { argument in
        let body = Unmanaged<ThreadBody>.fromOpaque(argument!).takeRetainedValue()
        body.run()
        return nil
      }, box.toOpaque())
    guard result == 0 else {
      box.release()
      stateBox.withLock { $0 = .stopped }
      throw AgentProtocolError(
        .capture, "cannot start the capture thread: \(String(cString: strerror(result)))")
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
      let handle = sources.first { $0.interface == index }!.handle
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

  func run(writer initial: PcapngWriter, started: Int64) {
    var writer = initial
    var fileIndex = 1
    let maxDuration =
      plan.stop.durationSeconds ?? (plan.stop.packets == nil ? CapturePlan.defaultMaxDuration : nil)
    let maxBytes = plan.stop.bytes ?? CapturePlan.defaultMaxBytes
    let deadline = maxDuration.map { Clock.monotonicSeconds() + $0 }
    var fds = sources.map { pollfd(fd: $0.handle.selectableFD, events: Int16(POLLIN), revents: 0) }
    fds.append(pollfd(fd: stopPipe[0], events: Int16(POLLIN), revents: 0))
    var lastFlush = Clock.monotonicSeconds()
    var lastAddresses = lastFlush
    var packets: Int64 = 0
    var bytes: Int64 = 0
    var perInterface = [UInt64](repeating: 0, count: interfaceNames.count)
    var bytesPerInterface = perInterface
    var failure: AgentProtocolError?
    var reason: StopReason?
    var window = ReorderWindow(sources: sources.count)
    var outOfOrder = [UInt64](repeating: 0, count: interfaceNames.count)
    var fileOutOfOrder = outOfOrder
    var local = LocalAddresses.current()

    func write(
      _ index: Int, _ ns: Int64, _ length: Int, _ data: UnsafeRawBufferPointer, _ direction: PacketDirection,
      _ late: Bool
    ) {
      guard failure == nil else { return }
      if late {
        outOfOrder[index] += 1
        fileOutOfOrder[index] += 1
      }
      do {
        try writer.writePacket(
          interface: index, timestampNanoseconds: ns, data: data, originalLength: length, direction: direction
        )
        packets += 1
        bytes += Int64(data.count)
        perInterface[index] += 1
        bytesPerInterface[index] += UInt64(data.count)
        // Rotation is checked per packet: one release can write thousands.
        if let rotate = plan.rotateBytes, Int64(writer.bytesWritten + writer.bufferedBytes) >= rotate {
          try finish(writer, started: started, written: perInterface, outOfOrder: fileOutOfOrder)
          fileOutOfOrder = fileOutOfOrder.map { _ in 0 }
          fileIndex += 1
          writer = try openFile(index: fileIndex)
          let path = writer.path
          counters.withLock { $0.files.append(path) }
        }
      } catch {
        failure = AgentProtocolError(error.code == .diskFull ? .diskFull : .io, error.description)
      }
    }

    /// Copies what `source` has ready into the window; the number read, or -1 on error.
    func take(_ sourceIndex: Int) -> Int32 {
      let source = sources[sourceIndex]
      let linkType = source.handle.linkType
      return source.handle.dispatch(limit: 4096) { ns, length, data in
        let direction =
          if case .byRecordAddresses = source.direction {
            local.directionOfDumpRecord(data, linkType: linkType)
          } else {
            source.direction.of(data, linkType: linkType)
          }
        window.add(
          source: sourceIndex, interface: source.interface, timestamp: ns, originalLength: length, data: data,
          direction: direction, write: write)
      }
    }

    loop: while failure == nil {
      let ready = poll(&fds, nfds_t(fds.count), 50)
      if ready < 0 && errno != EINTR {
        failure = AgentProtocolError(.capture, "poll: \(String(cString: strerror(errno)))")
        break
      }
      if fds[sources.count].revents != 0 { break loop }
      for index in sources.indices where fds[index].revents != 0 {
        if take(index) < 0 {
          let handle = sources[index].handle
          failure = AgentProtocolError(.capture, "\(handle.interface): \(handle.lastError)")
          break loop
        }
      }
      window.release(now: Clock.realtimeNanoseconds(), write: write)
      let now = Clock.monotonicSeconds()
      if let deadline, now >= deadline { reason = .durationReached; break }
      if let limit = plan.stop.packets, packets >= limit { reason = .packetCountReached; break }
      if bytes >= maxBytes { reason = .byteLimitReached; break }
      let fileSize = Int64(writer.bytesWritten + writer.bufferedBytes)
      if let limit = plan.stop.maxFileBytes, fileSize >= limit { reason = .fileSizeLimitReached; break }
      if now - lastFlush >= 0.1 {
        do {
          try writer.flush()
        } catch {
          failure = AgentProtocolError(error.code == .diskFull ? .diskFull : .io, error.description)
        }
        lastFlush = now
        publish(
          packets: packets, bytes: bytes, perInterface: perInterface, bytesPerInterface: bytesPerInterface,
          outOfOrder: outOfOrder)
      }
      if now - lastAddresses >= 1 {
        // Addresses can change during a capture; dump record directions follow them.
        local = LocalAddresses.current()
        lastAddresses = now
      }
    }
    // Drain what the kernel already holds (after one block-retire period, so a partly filled
    // block is handed over too), then everything the window holds, statistics and the end
    // of the file. Every stop path comes through here; after a write failure nothing more
    // can be written, but the window is still emptied.
    if failure == nil {
      usleep(useconds_t(PcapHandle.retireMilliseconds * 2_500))
      for index in sources.indices {
        var rounds = 0
        while take(index) > 0 && rounds < 64 { rounds += 1 }
      }
    }
    window.release(now: Clock.realtimeNanoseconds(), all: true, write: write)
    publish(
      packets: packets, bytes: bytes, perInterface: perInterface, bytesPerInterface: bytesPerInterface,
      outOfOrder: outOfOrder)
    do {
      try finish(writer, started: started, written: perInterface, outOfOrder: fileOutOfOrder)
    } catch {
      if failure == nil {
        failure = AgentProtocolError(error.code == .diskFull ? .diskFull : .io, error.description)
      }
    }
    let end = Clock.realtimeNanoseconds()
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
    packets: Int64, bytes: Int64, perInterface: [UInt64], bytesPerInterface: [UInt64], outOfOrder: [UInt64]
  ) {
    let stats = interfaceStatistics()
    counters.withLock { c in
      c.packets = packets
      c.bytes = bytes
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
    let now = Clock.realtimeNanoseconds()
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

final class ThreadBody {
  let body: () -> Void
  init(_ body: @escaping () -> Void) { self.body = body }
  func run() { body() }
}

/// Clocks, without Foundation.
public enum Clock {
  public static func realtimeNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
  }

  public static func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
  }

  public static func monotonicSeconds() -> Double { Double(monotonicNanoseconds()) / 1e9 }
}

/// Facts about this agent and host, for `hello` and file headers.
public enum AgentInfo {
  public static let version = "0.2.0"
  /// Set at release time; "dev" for local builds.
  public static let buildID = "dev"

  static func uname() -> utsname {
    var info = utsname()
    _ = Glibc.uname(&info)
    return info
  }

  static func text<T>(_ field: T) -> String {
    withUnsafeBytes(of: field) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
  }

  public static var kernel: String { text(uname().release) }
  public static var machine: String { text(uname().machine) }
  public static var hostname: String { text(uname().nodename) }
  public static var osDescription: String { "\(text(uname().sysname)) \(kernel)" }
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
