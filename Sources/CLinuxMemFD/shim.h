#ifndef LIVEHUB_CLINUXMEMFD_SHIM_H
#define LIVEHUB_CLINUXMEMFD_SHIM_H
// memfd_create(2) and file sealing (fcntl(2) F_ADD_SEALS) for Swift: glibc declares them only under
// _GNU_SOURCE, which Swift's Glibc module is not built with, so they are not importable directly.
#include <fcntl.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

/// memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING); -1 with errno set where there is none.
static inline int livehub_memfd_create_sealable(const char *name) {
#if defined(__linux__) && defined(SYS_memfd_create)
    return (int)syscall(SYS_memfd_create, name, 0x0001U /* MFD_CLOEXEC */ | 0x0002U /* MFD_ALLOW_SEALING */);
#else
    (void)name;
    return -1;
#endif
}

/// Seals the file against any further change of size or content, and against new seals.
static inline int livehub_seal_immutable(int fd) {
#if defined(__linux__)
    // F_ADD_SEALS = F_LINUX_SPECIFIC_BASE + 9; F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE.
    return fcntl(fd, 1024 + 9, 0x0001 | 0x0002 | 0x0004 | 0x0008);
#else
    (void)fd;
    return -1;
#endif
}

#endif
