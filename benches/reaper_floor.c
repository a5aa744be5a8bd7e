/* reaper_floor: the least CPU a pidfd + epoll reaper thread can spend on N children.
 *
 * Used by benches/reaper.rs as the floor for offspring's reaper thread; the bench compiles it
 * at run time with `cc -O2 -pthread` and parses its one output line.
 *
 *   reaper_floor N STEP_US
 *
 * The main thread forks N children that block in pause(), opening each child's pidfd and
 * adding it to the epoll set as it goes. When all are running it kills child i with SIGKILL at
 * STEP_US * i after the last fork (clock_nanosleep to an absolute deadline; when it falls
 * behind it catches up without sleeping), the schedule the bench applies to offspring's
 * children. This is the work split offspring has (the spawning thread registers, a
 * `kill_on_drop` handle signals from the dropping thread).
 *
 * The reaper thread, started before the first fork like offspring's, only sleeps in
 * epoll_wait with no timeout, reaps with waitid(P_PIDFD, WEXITED | WNOHANG), removes the pidfd
 * from the set and closes it. Nothing else: no table, no lock, no notification. It measures its
 * own CPU with CLOCK_THREAD_CPUTIME_ID from its start until the last child is reaped, and how
 * many times it ran (field 3 of /proc/thread-self/schedstat, as the bench reads offspring's).
 *
 * Output: one line,
 *   floor n=N step_us=S wall_s=W spawn_s=P reaper_cpu_ns=C reaper_runs=R statuses_ok=M
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static int n_children, epfd;
static int *pidfds;
static int statuses_ok;
static long long reaper_cpu_ns;
static long long reaper_runs = -1;

static long long clock_ns(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void sleep_until(long long ns) {
    struct timespec t = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR) {
    }
}

static void *reaper(void *arg) {
    (void)arg;
    long long c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    struct epoll_event evs[64];
    int reaped = 0;
    while (reaped < n_children) {
        int n = epoll_wait(epfd, evs, 64, -1);
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            siginfo_t si;
            memset(&si, 0, sizeof si);
            if (waitid(P_PIDFD, (id_t)pidfds[i], &si, WEXITED | WNOHANG) != 0 || si.si_pid == 0)
                continue;
            statuses_ok += si.si_code == CLD_KILLED && si.si_status == SIGKILL;
            epoll_ctl(epfd, EPOLL_CTL_DEL, pidfds[i], NULL);
            close(pidfds[i]);
            reaped++;
        }
    }
    reaper_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
    FILE *f = fopen("/proc/thread-self/schedstat", "r");
    if (f) {
        long long run_ns, wait_ns;
        if (fscanf(f, "%lld %lld %lld", &run_ns, &wait_ns, &reaper_runs) != 3)
            reaper_runs = -1;
        fclose(f);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: reaper_floor N STEP_US\n");
        return 2;
    }
    n_children = atoi(argv[1]);
    long long step_ns = atoll(argv[2]) * 1000;
    pid_t *pids = calloc((size_t)n_children, sizeof *pids);
    pidfds = calloc((size_t)n_children, sizeof *pidfds);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!pids || !pidfds || epfd < 0) {
        perror("reaper_floor: setup");
        return 1;
    }
    long long t0 = clock_ns(CLOCK_MONOTONIC);
    pthread_t th;
    if (pthread_create(&th, NULL, reaper, NULL) != 0) {
        fprintf(stderr, "reaper_floor: pthread_create failed\n");
        return 1;
    }
    for (int i = 0; i < n_children; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            /* Only async-signal-safe calls after fork. */
            for (;;)
                pause();
        }
        if (pid < 0) {
            perror("reaper_floor: fork");
            return 1;
        }
        pids[i] = pid;
        int fd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (fd < 0) {
            perror("reaper_floor: pidfd_open");
            return 1;
        }
        pidfds[i] = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)i};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            perror("reaper_floor: epoll_ctl");
            return 1;
        }
    }
    long long t_spawned = clock_ns(CLOCK_MONOTONIC);
    for (int i = 0; i < n_children; i++) {
        long long due = t_spawned + (long long)i * step_ns;
        if (clock_ns(CLOCK_MONOTONIC) < due)
            sleep_until(due);
        kill(pids[i], SIGKILL);
    }
    pthread_join(th, NULL);
    long long t1 = clock_ns(CLOCK_MONOTONIC);
    printf("floor n=%d step_us=%lld wall_s=%.3f spawn_s=%.3f reaper_cpu_ns=%lld reaper_runs=%lld "
           "statuses_ok=%d\n",
           n_children, step_ns / 1000, (double)(t1 - t0) / 1e9, (double)(t_spawned - t0) / 1e9,
           reaper_cpu_ns, reaper_runs, statuses_ok);
    return statuses_ok == n_children ? 0 : 1;
}
