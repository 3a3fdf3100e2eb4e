/* Plain main() for fuzz targets built without libFuzzer: replay every
 * file of the directories (or files) given, then check nothing leaked.
 * Arguments starting with '-' (libFuzzer flags) are ignored. */
#ifndef TESTS_FUZZ_MAIN_H
#define TESTS_FUZZ_MAIN_H

#include "core/arena.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    static uint8_t buf[1 << 20];
    size_t n;

    if (f == NULL) {
        perror(path);
        return -1;
    }
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    /* and every prefix, cheaply: truncated input is the common case */
    for (size_t cut = 0; cut < n && cut < 64; cut++)
        LLVMFuzzerTestOneInput(buf, cut);
    return 0;
}

int main(int argc, char **argv)
{
    int files = 0;

    for (int i = 1; i < argc; i++) {
        DIR *d;
        struct dirent *e;

        if (argv[i][0] == '-')
            continue;
        d = opendir(argv[i]);
        if (d == NULL) {
            if (replay_file(argv[i]) != 0)
                return 1;
            files++;
            continue;
        }
        while ((e = readdir(d)) != NULL) {
            char path[4096];

            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
            if (replay_file(path) != 0) {
                closedir(d);
                return 1;
            }
            files++;
        }
        closedir(d);
    }
    if (core_mem_tag_live(CORE_TAG_TEST) != 0) {
        fprintf(stderr, "leak: %lld bytes\n", (long long)core_mem_tag_live(CORE_TAG_TEST));
        return 1;
    }
    printf("replayed %d inputs\n", files);
    return files > 0 ? 0 : 1;
}

#endif
