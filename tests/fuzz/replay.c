/* SPDX-License-Identifier: MIT */
/*
 * Replays fuzz-ops inputs without libFuzzer, so every build (gcc included)
 * runs the checked-in corpus: each argument is a file or a directory of
 * files, fed in name order to LLVMFuzzerTestOneInput. A crash prints the
 * decoded operations of the input that was running and its file name.
 *
 *   fuzz-ops-replay tests/fuzz/corpus [more files or directories]
 *
 * CLRMEMTRACE_FUZZ_VERBOSE=1 prints the operations of every input.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void fuzz_ops_dump_log(int fd);

static const char *current;

static void on_fatal(int sig)
{
	static const char msg[] = "\nfuzz-ops-replay: fatal signal while replaying ";

	if (write(2, msg, sizeof(msg) - 1) >= 0 && current &&
	    write(2, current, strlen(current)) >= 0 && write(2, "\n", 1) >= 0) {
		fuzz_ops_dump_log(2);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static int replay_file(const char *path, size_t *count)
{
	FILE *f = fopen(path, "rb");
	uint8_t *data = NULL;
	size_t len = 0, cap = 0;

	if (!f) {
		fprintf(stderr, "fuzz-ops-replay: %s: %s\n", path, strerror(errno));
		return 1;
	}
	for (;;) {
		size_t n;

		if (len == cap) {
			uint8_t *d;

			cap = cap ? cap * 2 : 4096;
			d = realloc(data, cap);
			if (!d) {
				fclose(f);
				free(data);
				fprintf(stderr, "fuzz-ops-replay: out of memory\n");
				return 1;
			}
			data = d;
		}
		n = fread(data + len, 1, cap - len, f);
		if (n == 0) {
			break;
		}
		len += n;
	}
	fclose(f);
	current = path;
	LLVMFuzzerTestOneInput(data, len);
	current = NULL;
	free(data);
	(*count)++;
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int replay_path(const char *path, size_t *count)
{
	struct dirent **names;
	struct stat st;
	int n, i, err = 0;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "fuzz-ops-replay: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		return replay_file(path, count);
	}
	n = scandir(path, &names, NULL, by_name);
	if (n < 0) {
		fprintf(stderr, "fuzz-ops-replay: %s: %s\n", path, strerror(errno));
		return 1;
	}
	for (i = 0; i < n; i++) {
		char full[4096];

		if (names[i]->d_name[0] != '.' &&
		    snprintf(full, sizeof(full), "%s/%s", path, names[i]->d_name) <
			    (int)sizeof(full) &&
		    stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
			err |= replay_file(full, count);
		}
		free(names[i]);
	}
	free(names);
	return err;
}

int main(int argc, char **argv)
{
	size_t count = 0;
	int i, err = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE-OR-DIRECTORY...\n", argv[0]);
		return 2;
	}
	signal(SIGSEGV, on_fatal);
	signal(SIGBUS, on_fatal);
	signal(SIGABRT, on_fatal);
	LLVMFuzzerInitialize(&argc, &argv);
	for (i = 1; i < argc; i++) {
		err |= replay_path(argv[i], &count);
	}
	printf("fuzz-ops-replay: %zu inputs replayed\n", count);
	if (count == 0) {
		fprintf(stderr, "fuzz-ops-replay: no inputs found\n");
		return 1;
	}
	return err;
}
