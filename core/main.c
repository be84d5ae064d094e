/* main.c: the tollgate binary's entry point; the verbs live in cli.c. */
int tg_cli_main(int argc, char **argv);

int main(int argc, char **argv)
{
    return tg_cli_main(argc, argv);
}
