/*  =========================================================================
    ps_handoff - mark data handed from one thread to another through a
    ZeroMQ pipe, for ThreadSanitizer

    Threads in psmq share data only by hand-off over ZeroMQ pipes: the
    sender stops touching what it sent, the receiver owns it from then on.
    The happens-before edge lives inside libzmq, which Debian does not
    build with -fsanitize=thread, so TSan cannot see it and would report
    every hand-off as a race. The sender marks what it hands over after
    its last write (PS_HANDOFF_SEND), the receiver before its first read
    (PS_HANDOFF_RECEIVE). Outside a TSan build both are nothing.
    ========================================================================= */

#ifndef PS_HANDOFF_H_INCLUDED
#define PS_HANDOFF_H_INCLUDED

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define PS_HANDOFF_SEND(address) __tsan_release ((void *)(address))
#define PS_HANDOFF_RECEIVE(address) __tsan_acquire ((void *)(address))
#else
#define PS_HANDOFF_SEND(address) ((void)(address))
#define PS_HANDOFF_RECEIVE(address) ((void)(address))
#endif

#endif
