# Plot of tools/bench_process.py's results: events/s against leads (the
# sweep runs) and against the event-time span (every run), for leadscored,
# the Python pipeline and a bare librdkafka consumer.
# Usage: gnuplot -e "datafile='plot.dat'; outfile='bench_process.png'; hassweep=1" bench_process.gp
# plot.dat columns: leads span_h leadscored python raw sweep(0/1) "scenario"
set terminal pngcairo size 1100,460 font ",10" noenhanced
set output outfile
set multiplot layout 1,2 title "leadscored process throughput (tools/bench_process.py)"
set logscale xy
set grid
set ylabel "events/s"
set key top left
set format y "%.0s%c"
set format x "%.0s%c"
set xlabel "leads (sweep, live event times)"
if (hassweep) {
  plot datafile using ($6 == 1 ? $1 : NaN):3 with linespoints pt 7 title "leadscored", \
       '' using ($6 == 1 ? $1 : NaN):4 with linespoints pt 5 title "Python pipeline", \
       '' using ($6 == 1 ? $1 : NaN):5 with linespoints pt 9 title "raw librdkafka"
} else {
  set label 1 "no sweep in this run" at graph 0.35, graph 0.5
  plot [1:10][1:10] NaN notitle
  unset label 1
}
set xlabel "event-time span of the events (hours)"
set format x "%g"
plot datafile using 2:3 with points pt 7 ps 1.3 title "leadscored", \
     '' using 2:4 with points pt 5 ps 1.3 title "Python pipeline", \
     '' using 2:5 with points pt 9 ps 1.3 title "raw librdkafka", \
     '' using 2:($6 == 1 ? NaN : $3):7 with labels offset 0,-1 font ",8" notitle
unset multiplot
