#include "greet.h"

int main(void) {
    greet("rulerun");
    return 0;
}
