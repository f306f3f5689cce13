/* CPU time of a process's threads, for benchmarks that charge a relay only its own CPU. */
#ifndef WZP_TESTS_PROC_CPU_H
#define WZP_TESTS_PROC_CPU_H

#include <stdint.h>
#include <sys/types.h>

/* Sum of CPU ns (schedstat) of pid's threads: all, or those whose name starts with prefix. */
uint64_t wzp_proc_cpu_ns(pid_t pid, const char *prefix);

#endif
