#include <bad.hpp>
int main() { return 0; }
