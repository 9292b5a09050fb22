/* A hostile healthcheck entrypoint, compiled with `gcc -static` at test time and put into test images.
 * Every attack prints "ESCAPED: ..." when it works and "blocked: ..." when it does not; the program exits
 * 0 when nothing escaped and 66 when something did.
 *   hostile escape CANARY_DIR HOST_PID   chroot climb, /proc/1/root, mount, ptrace, leaked fds, userns
 *   hostile fork N                        fork N children that pause; prints "forked K"
 *   hostile write BYTES                   write BYTES to /tmp, /dev/shm, $HOME, / ; prints what fit
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int escaped = 0;

static void verdict(int ok, const char *what) {
  if (ok) {
    printf("ESCAPED: %s\n", what);
    escaped = 1;
  } else {
    printf("blocked: %s (%s)\n", what, strerror(errno));
  }
  fflush(stdout);
}

/* Try to create CANARY/pwned-TAG through `prefix` (a path that would reach the host). */
static int try_write(const char *prefix, const char *canary, const char *tag) {
  char p[4096];
  snprintf(p, sizeof p, "%s%s/pwned-%s", prefix, canary, tag);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0666);
  if (fd < 0) return 0;
  (void)write(fd, "pwned\n", 6);
  close(fd);
  return 1;
}

static int escape(const char *canary, int host_pid) {
  printf("uid=%d euid=%d gid=%d egid=%d\n", getuid(), geteuid(), getgid(), getegid());
  verdict(geteuid() == 0 && getuid() != 0, "setuid binary raised the effective uid");
  verdict(try_write("", canary, "direct"), "direct write to the host canary");
  verdict(try_write("/proc/1/root", canary, "proc1root"), "write through /proc/1/root");
  verdict(try_write("/proc/self/root/../../../../..", canary, "dotdot"), "write through ../ climb");
  /* Classic chroot-in-chroot climb. */
  mkdir("/tmp/jail", 0755);
  int dirfd = open("/", O_RDONLY | O_DIRECTORY);
  if (chroot("/tmp/jail") == 0) {
    if (dirfd >= 0) fchdir(dirfd);
    for (int i = 0; i < 256; i++) chdir("..");
    int ok = chroot(".") == 0 && try_write("", canary, "chroot");
    verdict(ok, "chroot-in-chroot climb");
  } else {
    verdict(0, "chroot");
  }
  if (dirfd >= 0) close(dirfd);
  verdict(mount("none", "/tmp", "tmpfs", 0, NULL) == 0, "mount tmpfs");
  verdict(mount("/", "/tmp", NULL, MS_BIND, NULL) == 0, "bind mount");
  verdict(umount2("/proc", MNT_DETACH) == 0, "umount /proc");
  verdict(ptrace(PTRACE_ATTACH, host_pid, 0, 0) == 0, "ptrace of a host pid");
  verdict(kill(host_pid, 0) == 0, "signal a host pid");
  /* The sandbox's init runs as the same user: tracing it is allowed, and must give nothing more. */
  if (ptrace(PTRACE_ATTACH, 1, 0, 0) == 0) {
    waitpid(1, NULL, __WALL);
    ptrace(PTRACE_DETACH, 1, 0, 0);
    printf("note: the sandbox init is traceable (same user)\n");
  }
  DIR *d = opendir("/proc/1/fd");
  struct dirent *de;
  while (d && (de = readdir(d)) != NULL) {
    char p[300];
    struct stat st;
    snprintf(p, sizeof p, "/proc/1/fd/%s", de->d_name);
    if (de->d_name[0] != '.' && stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
      printf("ESCAPED: the sandbox init holds directory fd %s\n", de->d_name);
      escaped = 1;
    }
  }
  if (d) closedir(d);
  verdict(unshare(CLONE_NEWUSER) == 0, "new user namespace");
  verdict(unshare(CLONE_NEWNS) == 0, "new mount namespace");
  int was_root = getuid() == 0;
  verdict(!was_root && setuid(0) == 0, "setuid(0)");
  /* Descriptors leaked from the host: climb from each directory fd. */
  for (int fd = 3; fd < 1024; fd++) {
    struct stat st;
    if (fstat(fd, &st) != 0) continue;
    char what[64];
    snprintf(what, sizeof what, "leaked fd %d", fd);
    int up = openat(fd, "..", O_RDONLY | O_DIRECTORY);
    verdict(S_ISDIR(st.st_mode) && up >= 0, what);
    if (up >= 0) close(up);
  }
  /* Writable root? */
  int w = open("/x1-root-write", O_WRONLY | O_CREAT, 0644);
  verdict(w >= 0, "write to the read-only root");
  return escaped ? 66 : 0;
}

static int storm(int n) {
  int k = 0;
  for (int i = 0; i < n; i++) {
    pid_t p = fork();
    if (p == 0) {
      pause();
      _exit(0);
    }
    if (p < 0) break;
    k++;
  }
  printf("forked %d\n", k);
  fflush(stdout);
  return k < n ? 0 : 3;
}

static long long fill(const char *path, long long bytes) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return -1;
  static char buf[1 << 20];
  memset(buf, 'x', sizeof buf);
  long long done = 0;
  while (done < bytes) {
    ssize_t w = write(fd, buf, sizeof buf);
    if (w <= 0) break;
    done += w;
  }
  close(fd);
  return done;
}

static int big(long long bytes) {
  signal(SIGXFSZ, SIG_IGN);
  const char *home = getenv("HOME");
  char h[4096];
  snprintf(h, sizeof h, "%s/big", home ? home : "/nonexistent");
  const char *paths[] = {"/tmp/big", "/dev/shm/big", h, "/big", "/dev/big"};
  for (int i = 0; i < 5; i++) printf("wrote %s %lld\n", paths[i], fill(paths[i], bytes));
  fflush(stdout);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 4 && strcmp(argv[1], "escape") == 0) return escape(argv[2], atoi(argv[3]));
  if (argc >= 3 && strcmp(argv[1], "fork") == 0) return storm(atoi(argv[2]));
  if (argc >= 3 && strcmp(argv[1], "write") == 0) return big(atoll(argv[2]));
  fprintf(stderr, "usage\n");
  return 2;
}
