import CLinuxMemFD
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A finished segment's bytes in an anonymous in-memory file (Linux `memfd_create(2)`), sealed so
/// that neither its size nor its content can change again (`F_SEAL_WRITE | F_SEAL_GROW |
/// F_SEAL_SHRINK | F_SEAL_SEAL`).
///
/// Why: a socket `write` of a heap buffer copies every byte into the kernel (perf under `wrk` on a
/// segment: `copy_from_iter` was 39 % of the server's samples). From a file the kernel can
/// `sendfile(2)` the page-cache pages themselves, as nginx does for its HLS files. The memory is the
/// same size either way; it is counted as shared memory (`Shmem` in `/proc/meminfo`, the fd's size
/// under `/proc/{pid}/fd`) instead of the process's RSS.
///
/// The descriptor is closed when the last reference goes: a response being sent keeps the file
/// alive until the write completes.
///
/// Issue 21: the same type holds a recorded file opened read-only from disk (`openReadOnly`) —
/// "a sealed or read-only file descriptor" — so recordings take the same `sendfile` path. Recorded
/// files are renamed into place complete and never written again.
public final class HLSMemoryFile: Sendable {
    /// Open until `deinit`; never written after creation.
    public let descriptor: CInt
    public let size: Int

    private init(descriptor: CInt, size: Int) {
        self.descriptor = descriptor
        self.size = size
    }

    deinit { close(descriptor) }

    /// A sealed file of `pieces` back to back; nil where memfds are unavailable or the process is
    /// out of descriptors (the caller keeps the heap bytes then).
    public static func make(copying pieces: [ByteBuffer]) -> HLSMemoryFile? {
        let fd = livehub_memfd_create_sealable("livehub-segment")
        guard fd >= 0 else { return nil }
        var size = 0
        for piece in pieces {
            let written = piece.withUnsafeReadableBytes { raw -> Bool in
                var offset = 0
                while offset < raw.count {
                    let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                    if n < 0 {
                        if errno == EINTR { continue }
                        return false
                    }
                    offset += n
                }
                return true
            }
            guard written else {
                close(fd)
                return nil
            }
            size += piece.readableBytes
        }
        guard livehub_seal_immutable(fd) == 0 else {
            close(fd)
            return nil
        }
        return HLSMemoryFile(descriptor: fd, size: size)
    }

    /// A regular file on disk opened read-only (`O_NOFOLLOW`: a symbolic link is refused); nil when
    /// it is missing, not a regular file, or cannot be opened.
    public static func openReadOnly(path: String) -> HLSMemoryFile? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_size >= 0, info.st_size <= Int64(Int.max) else {
            close(fd)
            return nil
        }
        return HLSMemoryFile(descriptor: fd, size: Int(info.st_size))
    }

    /// `length` bytes from `offset`, copied onto the heap (the router path and tests; the server's
    /// fast path sends the file itself).
    public func read(offset: Int, length: Int) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: length)
        _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { raw -> Int in
            var done = 0
            while done < length {
                let n = pread(descriptor, raw.baseAddress! + done, length - done, off_t(offset + done))
                if n < 0, errno == EINTR { continue }
                if n <= 0 { break }
                done += n
            }
            return done
        }
        // A sealed memfd cannot shrink; a recorded file could only if someone truncated it on disk:
        // the caller gets what is there.
        return buffer
    }
}

/// The body of an HLS response: bytes on the heap (playlists, init sections, the open segment's
/// parts), or a range of a finished segment's `HLSMemoryFile`.
public enum HLSBody: Sendable {
    case bytes(ByteBuffer)
    case file(HLSMemoryFile, offset: Int, length: Int)

    public var count: Int {
        switch self {
        case .bytes(let buffer): buffer.readableBytes
        case .file(_, _, let length): length
        }
    }

    /// The bytes on the heap (a copy for a file range).
    public var bytes: ByteBuffer {
        switch self {
        case .bytes(let buffer): buffer
        case .file(let file, let offset, let length): file.read(offset: offset, length: length)
        }
    }
}
