/*
 * hello-fatbuildr - a tiny greeting program used as a Fatbuildr example.
 *
 * SPDX-License-Identifier: MIT
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROGRAM_NAME "hello-fatbuildr"
#define PROGRAM_VERSION "1.0"

int main(int argc, char *argv[])
{
    if (argc > 1) {
        if (strcmp(argv[1], "--version") == 0) {
            printf("%s %s\n", PROGRAM_NAME, PROGRAM_VERSION);
            return EXIT_SUCCESS;
        }
        fprintf(stderr, "%s: unrecognized option '%s'\n", PROGRAM_NAME,
                argv[1]);
        return EXIT_FAILURE;
    }

    puts("Hello from Fatbuildr!");
    return EXIT_SUCCESS;
}
