#define _GNU_SOURCE
#include "CFileSafety.h"

#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

// ---- temporary paths ------------------------------------------------------------------

#define TEMPORARY_SLOTS 64
#define TEMPORARY_PATH_MAX 4096

static char temporary_paths[TEMPORARY_SLOTS][TEMPORARY_PATH_MAX];
// 0 free, 1 being written, 2 in use (the handler unlinks only complete entries).
static atomic_int temporary_state[TEMPORARY_SLOTS];

int smcpair_temporary_register(const char *path) {
  size_t length = strlen(path);
  if (length >= TEMPORARY_PATH_MAX) return -1;
  for (int slot = 0; slot < TEMPORARY_SLOTS; slot++) {
    int expected = 0;
    if (atomic_compare_exchange_strong(&temporary_state[slot], &expected, 1)) {
      memcpy(temporary_paths[slot], path, length + 1);
      atomic_store(&temporary_state[slot], 2);
      return slot;
    }
  }
  return -1;
}

void smcpair_temporary_unregister(int slot) {
  if (slot < 0 || slot >= TEMPORARY_SLOTS) return;
  atomic_store(&temporary_state[slot], 0);
}

void smcpair_temporary_unregister_path(const char *path) {
  for (int slot = 0; slot < TEMPORARY_SLOTS; slot++) {
    if (atomic_load(&temporary_state[slot]) == 2 && strcmp(temporary_paths[slot], path) == 0) {
      atomic_store(&temporary_state[slot], 0);
    }
  }
}

static void temporary_signal(int signal_number) {
  for (int slot = 0; slot < TEMPORARY_SLOTS; slot++) {
    if (atomic_load(&temporary_state[slot]) == 2) unlink(temporary_paths[slot]);
  }
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);
  sigaction(signal_number, &action, NULL);
  raise(signal_number);
}

void smcpair_temporary_install_handlers(void) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = temporary_signal;
  sigemptyset(&action.sa_mask);
  sigaddset(&action.sa_mask, SIGINT);
  sigaddset(&action.sa_mask, SIGTERM);
  sigaction(SIGINT, &action, NULL);
  sigaction(SIGTERM, &action, NULL);
}

// ---- guarded mappings -----------------------------------------------------------------

#define MAPPING_SLOTS 256

static atomic_uintptr_t mapping_start[MAPPING_SLOTS];
static atomic_size_t mapping_length[MAPPING_SLOTS];
static atomic_int mapping_faulted[MAPPING_SLOTS];
static atomic_int bus_handler_installed;
static struct sigaction previous_bus_action;

static void bus_signal(int signal_number, siginfo_t *info, void *context) {
  (void)context;
  uintptr_t address = (uintptr_t)info->si_addr;
  for (int slot = 0; slot < MAPPING_SLOTS; slot++) {
    uintptr_t start = atomic_load(&mapping_start[slot]);
    size_t length = atomic_load(&mapping_length[slot]);
    if (start != 0 && address >= start && address - start < length) {
      uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
      void *base = (void *)(address & ~(page - 1));
      // A private zero page over the vanished part of the file: the read is retried and
      // sees zeros, which every decoder treats as damage.
      if (mmap(base, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
        atomic_store(&mapping_faulted[slot], 1);
        return;
      }
      break;
    }
  }
  // Not ours (or the zero page failed): back to the handler before ours (the runtime's
  // backtracer, or the default); the faulting instruction runs again and raises it.
  sigaction(signal_number, &previous_bus_action, NULL);
}

int smcpair_mapping_register(const void *start, size_t length) {
  if (start == NULL || length == 0) return -1;
  int expected = 0;
  if (atomic_compare_exchange_strong(&bus_handler_installed, &expected, 1)) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = bus_signal;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    sigaction(SIGBUS, &action, &previous_bus_action);
  }
  for (int slot = 0; slot < MAPPING_SLOTS; slot++) {
    uintptr_t free_slot = 0;
    if (atomic_compare_exchange_strong(&mapping_start[slot], &free_slot, (uintptr_t)1)) {
      atomic_store(&mapping_faulted[slot], 0);
      atomic_store(&mapping_length[slot], length);
      atomic_store(&mapping_start[slot], (uintptr_t)start);
      return slot;
    }
  }
  return -1;
}

int smcpair_mapping_faulted(int slot) {
  if (slot < 0 || slot >= MAPPING_SLOTS) return 0;
  return atomic_load(&mapping_faulted[slot]);
}

void smcpair_mapping_unregister(int slot) {
  if (slot < 0 || slot >= MAPPING_SLOTS) return;
  atomic_store(&mapping_length[slot], 0);
  atomic_store(&mapping_start[slot], 0);
}
